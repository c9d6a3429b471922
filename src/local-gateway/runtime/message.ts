/** Header names are case-insensitive; the first spelling seen is kept for what is sent on. */
export class HeaderBag {
  private readonly map = new Map<string, { name: string; values: string[] }>();

  constructor(init?: Iterable<[string, string | string[]]>) {
    for (const [k, v] of init ?? []) for (const value of Array.isArray(v) ? v : [v]) this.append(k, value);
  }

  static fromIncoming(headers: Record<string, string | string[] | undefined>): HeaderBag {
    const bag = new HeaderBag();
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) for (const value of Array.isArray(v) ? v : [v]) bag.append(k, value);
    return bag;
  }

  get(name: string): string[] | undefined {
    return this.map.get(name.toLowerCase())?.values;
  }

  /** The values joined with ", " (how IReadOnlyDictionary<string,string[]>.GetValueOrDefault renders them). */
  joined(name: string): string | undefined {
    const v = this.get(name);
    return v === undefined ? undefined : v.join(", ");
  }

  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }

  set(name: string, values: string[]): void {
    this.map.set(name.toLowerCase(), { name, values: [...values] });
  }

  append(name: string, value: string): void {
    const e = this.map.get(name.toLowerCase());
    if (e) e.values.push(value);
    else this.map.set(name.toLowerCase(), { name, values: [value] });
  }

  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }

  names(): string[] {
    return [...this.map.values()].map((e) => e.name);
  }

  toRecord(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const e of this.map.values()) out[e.name] = [...e.values];
    return out;
  }
}
