// The fetch `Request` behind the library's HttpRequest, for the GET and HEAD requests the HTTP server
// receives, built only when a handler needs one.
//
// The library wraps every HTTP trigger value in its HttpRequest, which builds a fetch `Request` (URL
// parsed again, an AbortSignal, the headers list) and delegates `url`, `method`, `headers` and the body
// to it. Its init also takes that `Request` ready-made (`nativeRequest`, what the library itself passes
// when it streams), and HttpRequest uses nothing of it but those members and `clone()`. A GET or HEAD
// request has no body, so this stand-in answers `url` and `method` as the `Request` would, builds the
// `Headers` on first use, and hands the body methods and `clone()` to a real `Request` made from the
// current state each time (a null body is never "used", so each call sees what the one `Request` would).
// test/host/http-request.test.ts compares it with the real thing.

/** Methods the stand-in serves: no body, and `Request` keeps the (upper-case) name unchanged. */
const BODILESS = new Set(["GET", "HEAD"]);

export class BodilessRequest {
  readonly url: string;
  readonly method: string;
  readonly #init: Record<string, string>;
  #headers: Headers | undefined;

  /** `url` serialised by WHATWG URL (its `href`); `headers` as the library would pass them to `Request`. */
  constructor(url: string, method: string, headers: Record<string, string>) {
    this.url = url;
    this.method = method;
    this.#init = headers;
  }

  /**
   * Undefined where `new Request` would refuse or rewrite the input (another method, credentials in the
   * URL), so that the library builds the `Request` itself and fails as it always has.
   */
  static of(url: URL, method: string, headers: Record<string, string>): BodilessRequest | undefined {
    if (!BODILESS.has(method) || url.username !== "" || url.password !== "") return undefined;
    return new BodilessRequest(url.href, method, headers);
  }

  get headers(): Headers {
    return (this.#headers ??= new Headers(this.#init));
  }

  get body(): null {
    return null;
  }

  get bodyUsed(): boolean {
    return false;
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#request().arrayBuffer();
  }

  blob(): Promise<Blob> {
    return this.#request().blob();
  }

  formData(): Promise<FormData> {
    return this.#request().formData();
  }

  json(): Promise<unknown> {
    return this.#request().json();
  }

  text(): Promise<string> {
    return this.#request().text();
  }

  clone(): Request {
    return this.#request();
  }

  #request(): Request {
    return new Request(this.url, { method: this.method, headers: this.headers });
  }
}
