-- luacheck config for the distant Neovim plugin (LuaJIT + the vim global).
std = "luajit"
globals = { "vim" }
max_line_length = 120
-- Lines stylua cannot break (long strings) are its business, not ours.
max_string_line_length = false
max_comment_line_length = false

files["tests/**/*_spec.lua"] = { std = "+busted" }
files["tests/run.lua"] = { globals = { "arg" } }
