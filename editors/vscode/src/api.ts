// The bridge API's shapes (docs/BRIDGE-API.md), typed for the extension.
// Only what the extension uses; the bridge may send more fields.

export type ErrorKind =
  | "not_found"
  | "permission_denied"
  | "already_exists"
  | "not_a_directory"
  | "is_a_directory"
  | "directory_not_empty"
  | "conflict"
  | "invalid_params"
  | "not_connected"
  | "connection_lost"
  | "auth_failed"
  | "timeout"
  | "unsupported"
  | "other";

export type ConnectionStateWord = "connected" | "reconnecting" | "disconnected" | "lost";

export interface ConnectResult {
  connection: string;
  server: { version: string; capabilities: string[] };
}

export interface ConnectionStateParams {
  connection: string;
  state: ConnectionStateWord;
  detail?: string;
}

export type EntryType = "file" | "dir" | "symlink";

export interface Metadata {
  type: EntryType;
  size: number;
  mtime: number;
  atime?: number;
  ctime?: number;
  readonly: boolean;
  mode?: number;
  symlinkTarget?: string;
  etag?: string;
}

export interface ReadResult {
  data: string;
  encoding: "utf-8" | "base64";
  size: number;
  mtime: number;
  etag: string;
}

export interface WriteResult {
  size: number;
  mtime: number;
  etag: string;
}

export interface ReadDirResult {
  entries: { path: string; type: EntryType; depth: number }[];
  errors: { path: string; message: string }[];
}

export type ChangeKind = "created" | "modified" | "deleted" | "renamed" | "attributes";

export interface FsChangedParams {
  watch: string;
  changes: { kind: ChangeKind; path: string; to?: string }[];
}

export interface SearchMatch {
  path: string;
  line?: number;
  column?: number;
  text?: string;
  submatches: { start: number; end: number }[];
}

export interface SearchResultsParams {
  search: string;
  matches: SearchMatch[];
}

export interface SearchDoneParams {
  search: string;
  truncated: boolean;
  error?: string;
}

export interface ProcOutputParams {
  proc: string;
  stream: "stdout" | "stderr";
  data: string;
  encoding: "utf-8" | "base64";
}

export interface ProcExitParams {
  proc: string;
  code: number | null;
  signal?: string;
  error?: string;
}

export interface SystemInfo {
  os: string;
  family: string;
  arch: string;
  currentDir: string;
  separator: string;
  username: string;
  shell: string;
}
