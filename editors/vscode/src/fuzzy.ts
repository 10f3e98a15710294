// Fuzzy matching of file paths for Go to File: the query's characters in
// order (case-insensitive), scored like VS Code's Quick Open — matches in the
// file name, at word starts and in runs score higher, short paths and recent
// files first. Built for 100 000 paths per keystroke: lower-cased paths are
// kept, and a query that extends the previous one only looks at the previous
// matches.

export interface FuzzyResult {
  path: string;
  score: number;
}

/** Characters after which a match starts a word. */
function isBoundary(prev: number): boolean {
  // '/', '_', '-', '.', ' '
  return prev === 47 || prev === 95 || prev === 45 || prev === 46 || prev === 32;
}

/**
 * Score of `query` (already lower case) against `path` / `lower` (its lower
 * case form), or -1 when the characters are not all there in order. One
 * greedy pass over the characters: inside the file name when the whole
 * query fits there (that is what people type), else over the whole path.
 */
export function score(path: string, lower: string, query: string): number {
  const n = query.length;
  if (n === 0) return 0;
  const nameStart = lower.lastIndexOf("/") + 1;
  // Every character in order (native indexOf: fast); in the name if possible.
  let inName = true;
  let at = nameStart - 1;
  for (let i = 0; i < n; i++) {
    at = lower.indexOf(query[i], at + 1);
    if (at < 0) {
      inName = false;
      break;
    }
  }
  if (!inName) {
    at = -1;
    for (let i = 0; i < n; i++) {
      at = lower.indexOf(query[i], at + 1);
      if (at < 0) return -1;
    }
  }
  const len = lower.length;
  let total = 0;
  let prev = -2;
  let i = 0;
  let want = query.charCodeAt(0);
  for (let j = inName ? nameStart : 0; j < len && i < n; j++) {
    const c = lower.charCodeAt(j);
    if (c !== want) continue;
    let s = 1;
    if (j === prev + 1) s += 5;
    if (j === 0 || isBoundary(lower.charCodeAt(j - 1))) s += 4;
    else if (path.charCodeAt(j) !== c) s += 3; // camelCase hump
    if (j >= nameStart) s += 2;
    total += s;
    prev = j;
    want = query.charCodeAt(++i);
  }
  if (inName) {
    total += 6;
    if (lower.startsWith(query, nameStart)) total += 8;
    if (len - nameStart === n) total += 10; // the exact name
  }
  // Shorter paths win ties.
  return total - len / 256;
}

/**
 * Filters one list of paths as the user types. `setPaths` when the list
 * changes; `filter` per keystroke. Keeps, per matching path, where the
 * greedy scan of the last query stopped, so a query that extends it only
 * scans on from there (the same result as a fresh `score`).
 */
export class FuzzyMatcher {
  private paths: string[] = [];
  private lower: string[] = [];
  private nameStarts = new Int32Array(0);
  /** Per path, which of 32 character classes it holds (a quick reject). */
  private masks = new Uint32Array(0);
  /** Scan state per path for `lastQuery`: last matched index, sum, in the name. */
  private stPrev = new Int32Array(0);
  private stTotal = new Float64Array(0);
  private stInName = new Uint8Array(0);
  private lastQuery = "";
  /** Indexes of the paths that matched `lastQuery`. */
  private lastMatches: number[] | undefined;
  /** Results of recent queries (backspace), cleared by `setPaths`. */
  private readonly cache = new Map<string, FuzzyResult[]>();

  setPaths(paths: string[]): void {
    const n = paths.length;
    this.paths = paths;
    this.lower = paths.map((p) => p.toLowerCase());
    this.masks = new Uint32Array(n);
    this.nameStarts = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.masks[i] = charMask(this.lower[i]);
      this.nameStarts[i] = this.lower[i].lastIndexOf("/") + 1;
    }
    this.stPrev = new Int32Array(n);
    this.stTotal = new Float64Array(n);
    this.stInName = new Uint8Array(n);
    this.lastQuery = "";
    this.lastMatches = undefined;
    this.cache.clear();
  }

  get size(): number {
    return this.paths.length;
  }

  /**
   * Continues path `k`'s greedy scan with `query[from..]` after index
   * `prev`; stores the new state and returns true when every character
   * was found.
   */
  private extend(k: number, query: string, from: number, prev: number, total: number): boolean {
    const path = this.paths[k];
    const lower = this.lower[k];
    const nameStart = this.nameStarts[k];
    const n = query.length;
    const len = lower.length;
    let i = from;
    let want = query.charCodeAt(i);
    for (let j = prev + 1; j < len && i < n; j++) {
      const c = lower.charCodeAt(j);
      if (c !== want) continue;
      let s = 1;
      if (i > 0 && j === prev + 1) s += 5;
      if (j === 0 || isBoundary(lower.charCodeAt(j - 1))) s += 4;
      else if (path.charCodeAt(j) !== c) s += 3;
      if (j >= nameStart) s += 2;
      total += s;
      prev = j;
      want = query.charCodeAt(++i);
    }
    if (i < n) return false;
    this.stPrev[k] = prev;
    this.stTotal[k] = total;
    return true;
  }

  /** Scans path `k` for `query` from the start; false when it does not match. */
  private fresh(k: number, query: string): boolean {
    if (this.extend(k, query, 0, this.nameStarts[k] - 1, 0)) {
      this.stInName[k] = 1;
      return true;
    }
    this.stInName[k] = 0;
    return this.extend(k, query, 0, -1, 0);
  }

  private final(k: number, query: string): number {
    const lower = this.lower[k];
    let total = this.stTotal[k];
    if (this.stInName[k]) {
      const nameStart = this.nameStarts[k];
      total += 6;
      if (lower.startsWith(query, nameStart)) total += 8;
      if (lower.length - nameStart === query.length) total += 10;
    }
    return total - lower.length / 256;
  }

  /**
   * The best `limit` paths for `query`, best first. `recent` (most recent
   * first) lifts recently opened files; with an empty query they come first
   * and the rest follow in list order.
   */
  filter(query: string, limit: number, recent: readonly string[] = []): FuzzyResult[] {
    const q = query.replace(/\s+/g, "").toLowerCase();
    if (q === "") {
      const out: FuzzyResult[] = [];
      const present = new Set<string>();
      for (const p of recent) {
        if (out.length >= limit) break;
        out.push({ path: p, score: 0 });
        present.add(p);
      }
      for (let i = 0; i < this.paths.length && out.length < limit; i++)
        if (!present.has(this.paths[i])) out.push({ path: this.paths[i], score: 0 });
      this.lastQuery = "";
      this.lastMatches = undefined;
      return out;
    }
    const key = `${limit}\u0000${recent.join("\u0000")}\u0000${q}`;
    const cached = this.cache.get(key);
    const extending = this.lastMatches !== undefined && this.lastQuery !== "" && q.startsWith(this.lastQuery);
    if (cached && !extending) return cached;
    const boost = new Map<string, number>();
    recent.forEach((p, i) => boost.set(p, 20 - Math.min(i, 19) / 2));
    const from = extending ? this.lastQuery.length : 0;
    const boosted = boost.size > 0;
    const matches: number[] = [];
    // A bounded list of the best results, kept sorted (best first).
    const best: FuzzyResult[] = [];
    const need = charMask(q);
    const masks = this.masks;
    const consider = (k: number) => {
      if ((masks[k] & need) !== need) return;
      let ok: boolean;
      if (!extending) ok = this.fresh(k, q);
      else if (this.stInName[k]) {
        ok = this.extend(k, q, from, this.stPrev[k], this.stTotal[k]) || this.fresh(k, q);
      } else ok = this.extend(k, q, from, this.stPrev[k], this.stTotal[k]);
      if (!ok) return;
      matches.push(k);
      const total = boosted ? this.final(k, q) + (boost.get(this.paths[k]) ?? 0) : this.final(k, q);
      if (best.length === limit && total <= best[best.length - 1].score) return;
      let lo = 0;
      let hi = best.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (best[mid].score >= total) lo = mid + 1;
        else hi = mid;
      }
      best.splice(lo, 0, { path: this.paths[k], score: total });
      if (best.length > limit) best.pop();
    };
    if (extending) for (const k of this.lastMatches!) consider(k);
    else for (let k = 0; k < this.paths.length; k++) consider(k);
    this.lastQuery = q;
    this.lastMatches = matches;
    if (this.cache.size >= 64) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, best);
    return best;
  }
}

/** A bit per character class: a-z fold to 26 bits, digits share one, the rest one. */
function charMask(lower: string): number {
  let mask = 0;
  for (let i = 0; i < lower.length; i++) {
    const c = lower.charCodeAt(i);
    if (c >= 97 && c <= 122) mask |= 1 << (c - 97);
    else if (c >= 48 && c <= 57) mask |= 1 << 26;
    else if (c === 47) mask |= 1 << 27;
    else if (c === 95 || c === 45) mask |= 1 << 28;
    else if (c === 46) mask |= 1 << 29;
    else mask |= 1 << 30;
  }
  return mask >>> 0;
}
