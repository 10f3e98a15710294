// Routes a stream's notifications (proc/output, fs/changed, search/results…)
// to the one listener that owns the stream id. Notifications that arrive
// before the owner registered (the start request's answer can come after the
// first results) are held briefly and replayed on registration.
import type { Bridge } from "./bridge";

type Listener = (method: string, params: any) => void;

/** How many early notifications are held per unknown id, and for how long. */
const EARLY_LIMIT = 1000;
const EARLY_TTL_MS = 10_000;

export class StreamRouter {
  private readonly listeners = new Map<string, Listener>();
  private readonly early = new Map<string, { at: number; items: [string, any][] }>();
  private readonly subscriptions: { dispose(): void }[];

  /** `methods` maps each notification method to the field holding the stream id. */
  constructor(bridge: Bridge, methods: Record<string, string>) {
    this.subscriptions = Object.entries(methods).map(([method, idField]) =>
      bridge.onNotification(method, (params) => this.route(method, params?.[idField], params)),
    );
  }

  /** Claims a stream id; replays what arrived for it already. */
  register(id: string, listener: Listener): { dispose(): void } {
    this.listeners.set(id, listener);
    const held = this.early.get(id);
    if (held) {
      this.early.delete(id);
      for (const [method, params] of held.items) listener(method, params);
    }
    return { dispose: () => this.unregister(id, listener) };
  }

  unregister(id: string, listener?: Listener): void {
    if (!listener || this.listeners.get(id) === listener) this.listeners.delete(id);
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.listeners.clear();
    this.early.clear();
  }

  private route(method: string, id: unknown, params: any): void {
    if (typeof id !== "string") return;
    const listener = this.listeners.get(id);
    if (listener) {
      listener(method, params);
      return;
    }
    const now = Date.now();
    for (const [key, held] of this.early) if (now - held.at > EARLY_TTL_MS) this.early.delete(key);
    let held = this.early.get(id);
    if (!held) this.early.set(id, (held = { at: now, items: [] }));
    if (held.items.length < EARLY_LIMIT) held.items.push([method, params]);
  }
}
