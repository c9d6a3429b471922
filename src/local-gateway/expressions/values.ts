/**
 * Runtime values of policy expressions, as the gateway's C# sees them: JavaScript strings, numbers,
 * booleans and null stand for their C# counterparts; JSON bodies are {@link JToken}s (Newtonsoft.Json);
 * the `context` object model is made of {@link HostObject}s. Errors carry the .NET exception name,
 * because that is what APIM reports in `context.LastError` when an expression fails.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

/** The result of `a?.b` when `a` is null: propagates through the rest of the member chain, then reads as null. */
export const NULL_PROPAGATION: unique symbol = Symbol("null-propagation");

export class CsException extends Error {
  constructor(
    readonly exception: "InvalidCastException" | "NullReferenceException" | "KeyNotFoundException" | "IndexOutOfRangeException" | "ArgumentException" | "ArgumentNullException" | "ArgumentOutOfRangeException" | "CryptographicException" | "FormatException" | "NotSupportedException" | "JsonReaderException",
    message: string,
  ) {
    super(`${exception}: ${message}`);
  }
}

export interface CsArg {
  name?: string;
  value: unknown;
  /** Written as a string literal ("x"): a string, whatever its length. */
  string?: true;
}

/** A .NET object of the gateway's object model (context, request, variables, …). */
export interface HostObject {
  readonly csType: string;
  getMember(name: string): unknown;
  invoke?(name: string, args: CsArg[], typeArgs: string[]): unknown;
  getIndex?(key: unknown): unknown;
  setIndex?(key: unknown, value: unknown): void;
  toCsString?(): string;
}

export function isHostObject(v: unknown): v is HostObject {
  return typeof v === "object" && v !== null && "csType" in v && typeof (v as HostObject).getMember === "function";
}

/** A byte[] (request bodies read as bytes). */
export class ByteArray implements HostObject {
  readonly csType = "byte[]";
  constructor(readonly bytes: Uint8Array) {}
  getMember(name: string): unknown {
    if (name === "Length") return this.bytes.length;
    throw unknownMember(this.csType, name);
  }
  /**
   * APIM's `Encrypt(this byte[] input, string alg, byte[] key, byte[] iv)` and `Decrypt` with alg "Aes":
   * .NET's Aes defaults, CBC with PKCS7 padding; a key of 16, 24 or 32 bytes, an IV of 16. A wrong key
   * fails the padding check as .NET does (CryptographicException) — or, rarely, yields garbage.
   */
  invoke(name: string, args: CsArg[]): unknown {
    if ((name === "Encrypt" || name === "Decrypt") && args.length === 3) {
      const [alg, key, iv] = args.map((a) => a.value);
      if (alg !== "Aes") throw new CsException("NotSupportedException", `${name}: only the "Aes" algorithm is emulated`);
      if (!(key instanceof ByteArray) || !(iv instanceof ByteArray)) throw new CsException("ArgumentNullException", `${name} needs the key and the IV as byte[]`);
      if (![16, 24, 32].includes(key.bytes.length) || iv.bytes.length !== 16) throw new CsException("CryptographicException", "Specified key or initialization vector is not a valid size for this algorithm.");
      const algorithm = `aes-${key.bytes.length * 8}-cbc`;
      try {
        const c = name === "Encrypt" ? createCipheriv(algorithm, key.bytes, iv.bytes) : createDecipheriv(algorithm, key.bytes, iv.bytes);
        return new ByteArray(new Uint8Array(Buffer.concat([c.update(this.bytes), c.final()])));
      } catch {
        throw new CsException("CryptographicException", "Padding is invalid and cannot be removed.");
      }
    }
    throw unknownMember(this.csType, `${name}()`);
  }
  getIndex(key: unknown): unknown {
    const i = asInt(key);
    if (i < 0 || i >= this.bytes.length) throw new CsException("IndexOutOfRangeException", "Index was outside the bounds of the array.");
    return this.bytes[i];
  }
}

/** Newtonsoft.Json.Formatting, the argument of JToken.ToString(Formatting): None is compact JSON, Indented two spaces. */
export class Formatting implements HostObject {
  readonly csType = "Formatting";
  constructor(readonly name: "None" | "Indented") {}
  getMember(name: string): unknown {
    throw unknownMember(this.csType, name);
  }
  toCsString(): string {
    return this.name;
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Newtonsoft.Json's JToken family: JObject, JArray and JValue over a JSON value. */
export class JToken implements HostObject {
  constructor(private value: Json) {}

  static parse(text: string): JToken {
    try {
      return new JToken(JSON.parse(text) as Json);
    } catch (err) {
      throw new CsException("JsonReaderException", (err as Error).message);
    }
  }

  get csType(): string {
    const v = this.value;
    return Array.isArray(v) ? "JArray" : v !== null && typeof v === "object" ? "JObject" : "JValue";
  }

  json(): Json {
    return this.value;
  }

  getMember(name: string): unknown {
    if (name === "Type") return this.tokenType();
    if (name === "Count" && typeof this.value === "object" && this.value !== null) return Array.isArray(this.value) ? this.value.length : Object.keys(this.value).length;
    throw unknownMember(this.csType, name);
  }

  /** JToken.Type: the JTokenType name (compared with `JTokenType.X`, which evaluates to the same name). */
  private tokenType(): string {
    const v = this.value;
    if (Array.isArray(v)) return "Array";
    if (v === null) return "Null";
    if (typeof v === "object") return "Object";
    if (typeof v === "string") return "String";
    if (typeof v === "boolean") return "Boolean";
    return Number.isInteger(v) ? "Integer" : "Float";
  }

  invoke(name: string, args: CsArg[]): unknown {
    if (name === "ToString" && args.length === 0) return this.toCsString();
    // ToString(Formatting) writes JSON, a JValue included: a string comes back quoted, null as null.
    if (name === "ToString" && args.length === 1 && args[0]!.value instanceof Formatting) {
      return (args[0]!.value as Formatting).name === "None" ? JSON.stringify(this.value) : JSON.stringify(this.value, null, 2);
    }
    if (name === "ContainsKey" && args.length === 1 && this.csType === "JObject") return Object.hasOwn(this.value as object, String(args[0]!.value));
    if (name === "Remove" && args.length === 1 && this.csType === "JObject") {
      const k = String(args[0]!.value);
      const had = Object.hasOwn(this.value as object, k);
      delete (this.value as Record<string, Json>)[k];
      return had;
    }
    throw unknownMember(this.csType, `${name}()`);
  }

  getIndex(key: unknown): unknown {
    const v = this.value;
    if (Array.isArray(v)) {
      const i = asInt(key);
      if (i < 0 || i >= v.length) throw new CsException("ArgumentException", "Index was out of range.");
      return new JToken(v[i]!);
    }
    if (v !== null && typeof v === "object") {
      if (typeof key !== "string") throw new CsException("ArgumentException", "Accessed JObject values with invalid key value.");
      return Object.hasOwn(v, key) ? new JToken(v[key]!) : null;
    }
    throw new CsException("InvalidCastException", `Cannot access child value on ${this.csType}.`);
  }

  setIndex(key: unknown, value: unknown): void {
    const v = this.value;
    if (v === null || typeof v !== "object" || Array.isArray(v) || typeof key !== "string") {
      throw new CsException("ArgumentException", `Set JObject values with invalid key value on ${this.csType}.`);
    }
    v[key] = toJson(value);
  }

  /** Newtonsoft: a JValue renders its value (strings unquoted, booleans as True/False); containers render indented JSON. */
  toCsString(): string {
    const v = this.value;
    if (v === null) return "";
    if (typeof v === "string") return v;
    if (typeof v === "boolean") return v ? "True" : "False";
    if (typeof v === "number") return String(v);
    return JSON.stringify(v, null, 2);
  }
}

function toJson(value: unknown): Json {
  if (value instanceof JToken) return value.json();
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
  throw new CsException("ArgumentException", `Could not convert ${describe(value)} to a JToken.`);
}

export function unknownMember(type: string, name: string): CsException {
  return new CsException("NotSupportedException", `'${type}' has no member '${name}' in the local gateway`);
}

export function describe(v: unknown): string {
  if (v === null || v === NULL_PROPAGATION) return "null";
  if (typeof v === "string") return "string";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "double";
  if (typeof v === "boolean") return "bool";
  if (Array.isArray(v)) return "string[]";
  if (isHostObject(v)) return v.csType;
  return typeof v;
}

export function asInt(v: unknown): number {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  throw new CsException("InvalidCastException", `Unable to cast ${describe(v)} to int.`);
}

export function isNull(v: unknown): v is null | typeof NULL_PROPAGATION | undefined {
  return v === null || v === undefined || v === NULL_PROPAGATION;
}

/** object.ToString() as .NET renders it. */
export function csToString(v: unknown): string {
  if (isNull(v)) throw new CsException("NullReferenceException", "Object reference not set to an instance of an object.");
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return "System.String[]";
  if (isHostObject(v)) return v.toCsString ? v.toCsString() : v.csType;
  return String(v);
}

/** An explicit cast `(T)value`: unboxing is exact in .NET (a boxed int is not a string, nor a long). */
export function csCast(type: string, v: unknown): unknown {
  if (isNull(v)) {
    if (type === "int" || type === "long" || type === "double" || type === "bool") throw new CsException("NullReferenceException", `Cannot unbox null to ${type}.`);
    return null;
  }
  switch (type) {
    case "object":
      return v;
    case "string":
      if (typeof v === "string") return v;
      if (v instanceof JToken && v.csType === "JValue") return v.toCsString();
      break;
    case "int":
    case "long":
      if (typeof v === "number" && Number.isInteger(v)) return v;
      if (v instanceof JToken && typeof v.json() === "number") return Math.trunc(v.json() as number);
      break;
    case "double":
      if (typeof v === "number") return v;
      if (v instanceof JToken && typeof v.json() === "number") return v.json();
      break;
    case "bool":
      if (typeof v === "boolean") return v;
      if (v instanceof JToken && typeof v.json() === "boolean") return v.json();
      break;
    case "string[]":
      if (Array.isArray(v)) return v;
      break;
    default:
      if (isHostObject(v) && v.csType === type) return v;
  }
  throw new CsException("InvalidCastException", `Unable to cast object of type '${describe(v)}' to type '${type}'.`);
}

/**
 * A System.DateTime: an instant in milliseconds since the Unix epoch, and its Kind. .NET compares two
 * DateTimes by their ticks alone, whatever their Kind; so does the engine.
 */
export class CsDateTime implements HostObject {
  readonly csType = "DateTime";
  constructor(
    readonly ms: number,
    readonly kind: "Utc" | "Unspecified",
  ) {}
  getMember(name: string): unknown {
    throw unknownMember(this.csType, name);
  }
  /** Its text depends on the gateway's culture, which APIM does not document: refused, not guessed. */
  toCsString(): string {
    throw new CsException("NotSupportedException", "the local gateway does not render a DateTime as text (its format depends on the culture)");
  }
}

/** `a == b` for the value types and strings expressions compare; reference equality otherwise. */
export function csEquals(a: unknown, b: unknown): boolean {
  if (isNull(a) || isNull(b)) return isNull(a) && isNull(b);
  if (a instanceof CsDateTime && b instanceof CsDateTime) return a.ms === b.ms;
  return a === b;
}

export function truthy(v: unknown, what: string): boolean {
  if (typeof v === "boolean") return v;
  throw new CsException("InvalidCastException", `${what} must be a bool, got ${describe(v)}`);
}
