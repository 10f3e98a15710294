-- Runs busted specs inside headless Neovim: `nvim -l tests/run.lua SPEC…`.
-- Debian's lua-busted is plain Lua 5.1 code, which LuaJIT runs as is.
package.path = "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;" .. package.path
package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;" .. package.cpath
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
package.path = here .. "/?.lua;" .. package.path
local specs = _G.arg
_G.arg = vim.list_extend({ "--output", vim.env.DISTANT_TEST_OUTPUT or "TAP" }, specs)
require("busted.runner")({ standalone = false })
