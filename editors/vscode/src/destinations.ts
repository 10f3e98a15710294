// Pure naming logic: which bridge destination a `distant://AUTHORITY/…` URI
// names, and how remote paths and editor URIs convert. No I/O, no vscode.

export const SCHEME = "distant";

/** Named destinations from the `distant.destinations` setting. */
export type DestinationMap = Readonly<Record<string, string>>;

/**
 * AUTHORITY → the `destination` of the bridge's `connect`:
 * - `local` → `local` (a server the bridge starts on this machine);
 * - a name from `distant.destinations` → its value (`distant://…`/`ssh://…`),
 *   matched exactly first, then ignoring case (URI authorities are often
 *   lower-cased on the way through the workbench);
 * - anything else is an ssh host (`[user@]host[:port]` or an ssh alias).
 */
export function resolveDestination(authority: string, destinations: DestinationMap = {}): string {
  if (authority === "") {
    throw new Error("a distant:// URI needs an authority: distant://local/PATH or distant://HOST/PATH");
  }
  if (Object.prototype.hasOwnProperty.call(destinations, authority)) {
    return checkDestination(authority, destinations[authority]);
  }
  const lower = authority.toLowerCase();
  for (const [name, value] of Object.entries(destinations)) {
    if (name.toLowerCase() === lower) return checkDestination(name, value);
  }
  if (lower === "local") return "local";
  return `ssh://${authority}`;
}

function checkDestination(name: string, value: unknown): string {
  if (typeof value !== "string" || !/^(distant|ssh):\/\/|^local$/.test(value)) {
    throw new Error(
      `distant.destinations.${name} must be "local", "distant://HOST:PORT" or "ssh://[USER@]HOST[:PORT]"`,
    );
  }
  return value;
}

/**
 * A `distant://:KEY@HOST:PORT` destination split into the destination
 * without its key and the key (which then travels in `DISTANT_KEY`, never on
 * a command line: every local user can read those).
 */
export function withoutKey(destination: string): { destination: string; key?: string } {
  const m = /^(distant:\/\/)([^@/]*)@(.*)$/i.exec(destination.trim());
  if (!m) return { destination };
  const key = m[2].replace(/^:/, "");
  return key ? { destination: `${m[1]}${m[3]}`, key } : { destination: `${m[1]}${m[3]}` };
}

/** `text` with the key of every `distant://KEY@…` in it replaced by `***` (for logs and messages). */
export function redactKeys(text: string): string {
  return text.replace(/(distant:\/\/)[^@/\s"']*@/gi, "$1***@");
}

/**
 * The authority a destination typed by a person should get in URIs: a known
 * name stays, `local` stays, `ssh://user@host:22` becomes `user@host:22`.
 * `distant://` destinations need a name in settings (their key cannot go in a
 * URI), so they return undefined.
 */
export function authorityFor(input: string, destinations: DestinationMap = {}): string | undefined {
  const text = input.trim();
  if (text === "") return undefined;
  if (Object.prototype.hasOwnProperty.call(destinations, text)) return text;
  for (const [name, value] of Object.entries(destinations)) {
    if (value === text) return name;
  }
  if (text.toLowerCase() === "local") return "local";
  if (text.startsWith("ssh://")) return text.slice("ssh://".length).replace(/\/+$/, "") || undefined;
  if (text.includes("://")) return undefined;
  return text;
}

/**
 * The remote absolute path a URI's path names. VS Code keeps `uri.path`
 * absolute (`/home/me/a.txt`); an empty path is the remote root.
 */
export function remotePath(uriPath: string): string {
  if (uriPath === "" || uriPath === "/") return "/";
  const path = uriPath.startsWith("/") ? uriPath : `/${uriPath}`;
  // A trailing slash names the same directory; the bridge wants it bare.
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/** Joins a remote directory and a relative entry path (from `fs/readDir`, `fs/changed`). */
export function joinRemote(dir: string, relative: string): string {
  if (relative.startsWith("/")) return relative;
  if (relative === "" || relative === ".") return dir;
  return dir.endsWith("/") ? `${dir}${relative}` : `${dir}/${relative}`;
}

/** The `distant://AUTHORITY/PATH` string of a remote path. */
export function uriString(authority: string, path: string): string {
  const encoded = remotePath(path)
    .split("/")
    .map((part) => encodeURIComponent(part))
    .join("/");
  return `${SCHEME}://${authority}${encoded}`;
}
