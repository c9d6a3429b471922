import { describe, expect, it } from "vitest";
import {
  RouteTable,
  RouteTemplateError,
  comparePrecedence,
  matchRouteTemplate,
  parseRouteTemplate,
  splitPath,
} from "../../src/routing.js";

function match(template: string, path: string): Record<string, string> | null {
  return matchRouteTemplate(parseRouteTemplate(template), splitPath(path));
}

describe("route templates", () => {
  it("matches literals case-insensitively and decodes segments", () => {
    expect(match("projects/mine", "/Projects/MINE")).toEqual({});
    expect(match("projects/mine", "/projects/mine/")).toEqual({});
    expect(match("projects/mine", "/projects")).toBeNull();
    expect(match("projects/mine", "/projects/mine/extra")).toBeNull();
    expect(match("a/{p}", "/a/x%20y")).toEqual({ p: "x y" });
    expect(match("", "/")).toEqual({});
  });

  it("supports optional parameters and defaults", () => {
    expect(match("opt/{name?}", "/opt")).toEqual({});
    expect(match("opt/{name?}", "/opt/x")).toEqual({ name: "x" });
    expect(match("opt/{id:int?}", "/opt/x")).toBeNull();
    expect(match("opt/{id:int?}", "/opt/12")).toEqual({ id: "12" });
    expect(match("page/{n=1}", "/page")).toEqual({ n: "1" });
    expect(match("page/{n=1}", "/page/3")).toEqual({ n: "3" });
  });

  it("checks constraints", () => {
    expect(match("{v:int}", "/-12")).toEqual({ v: "-12" });
    expect(match("{v:int}", "/2147483648")).toBeNull();
    expect(match("{v:long}", "/2147483648")).toEqual({ v: "2147483648" });
    expect(match("{v:int}", "/1.5")).toBeNull();
    expect(match("{v:alpha}", "/abcXYZ")).toEqual({ v: "abcXYZ" });
    expect(match("{v:alpha}", "/abc1")).toBeNull();
    expect(match("{v:bool}", "/TRUE")).toEqual({ v: "TRUE" });
    expect(match("{v:bool}", "/yes")).toBeNull();
    expect(match("{v:guid}", "/0f8fad5b-d9cb-469f-a165-70867728950e")).not.toBeNull();
    expect(match("{v:guid}", "/0f8fad5bd9cb469fa16570867728950e")).not.toBeNull();
    expect(match("{v:guid}", "/0f8fad5b-d9cb")).toBeNull();
    expect(match("{v:minlength(3)}", "/ab")).toBeNull();
    expect(match("{v:minlength(3)}", "/abc")).not.toBeNull();
    expect(match("{v:maxlength(3)}", "/abcd")).toBeNull();
    expect(match("{v:length(2)}", "/ab")).not.toBeNull();
    expect(match("{v:length(2,4)}", "/abcde")).toBeNull();
    expect(match("{v:int:min(10)}", "/9")).toBeNull();
    expect(match("{v:int:min(10)}", "/10")).not.toBeNull();
    expect(match("{v:range(1,3)}", "/4")).toBeNull();
    expect(match("{v:regex(^[a-z]{{2}}-\\d+$)}", "/ab-12")).toEqual({ v: "ab-12" });
    expect(match("{v:regex(^[a-z]{{2}}-\\d+$)}", "/abc-12")).toBeNull();
    expect(match("{v:regex(^(a|b):c$)}", "/a:c")).toEqual({ v: "a:c" });
  });

  it("supports catch-all parameters", () => {
    expect(match("files/{*path}", "/files/a/b/c.txt")).toEqual({ path: "a/b/c.txt" });
    expect(match("files/{**path}", "/files/a")).toEqual({ path: "a" });
    expect(match("files/{*path}", "/files")).toEqual({});
    expect(match("files/{*path:minlength(3)}", "/files/a")).toBeNull();
  });

  it("supports complex segments", () => {
    expect(match("keys/{keyId}:rotate", "/keys/k1:rotate")).toEqual({ keyId: "k1" });
    expect(match("keys/{keyId}:rotate", "/keys/k1:ROTATE")).toEqual({ keyId: "k1" });
    expect(match("keys/{keyId}:rotate", "/keys/:rotate")).toBeNull();
    expect(match("keys/{keyId}:rotate", "/keys/k1")).toBeNull();
    expect(match("keys/{keyId:int}:rotate", "/keys/k1:rotate")).toBeNull();
    expect(match("{a}-{b}", "/x-y-z")).toEqual({ a: "x-y", b: "z" });
    expect(match("file/{name}.{ext?}", "/file/report.pdf")).toEqual({ name: "report", ext: "pdf" });
    expect(match("file/{name}.{ext?}", "/file/report")).toEqual({ name: "report" });
    expect(match("v{major:int}/x", "/v2/x")).toEqual({ major: "2" });
  });

  it("rejects invalid templates", () => {
    for (const t of ["a/{", "a/}", "a/{b}{c}", "{*a}/b", "{a}/{a}", "{a:nosuch}", "{a?}/b", "{*a?}", "a//b", "{}"]) {
      expect(() => parseRouteTemplate(t), t).toThrow(RouteTemplateError);
    }
  });

  it("computes ASP.NET precedence digits", () => {
    expect(parseRouteTemplate("a/{b}:x/{c:int}/{d}/{*e}").precedence).toEqual([1, 2, 2, 3, 5]);
    expect(parseRouteTemplate("{*e:minlength(1)}").precedence).toEqual([4]);
  });
});

describe("RouteTable", () => {
  const table = new RouteTable<string>();
  table.add("projects/{*rest}", ["GET"], "catchAll");
  table.add("projects/{name}", ["GET", "PUT"], "byName");
  table.add("projects/{id:int}", ["GET"], "byId");
  table.add("projects/mine", ["GET"], "mine");
  table.add("items/{id}", null, "anyMethod");

  const pick = (path: string, method = "GET"): string => {
    const m = table.match(splitPath(path), method);
    return m.status === "matched" ? m.value : m.status;
  };

  it("orders literal > constrained > unconstrained > catch-all regardless of registration order", () => {
    expect(pick("/projects/mine")).toBe("mine");
    expect(pick("/projects/7")).toBe("byId");
    expect(pick("/projects/seven")).toBe("byName");
    expect(pick("/projects/a/b")).toBe("catchAll");
  });

  it("selects on method before precedence and reports 405 with the allowed methods", () => {
    expect(pick("/projects/mine", "PUT")).toBe("byName");
    const m = table.match(splitPath("/projects/mine"), "DELETE");
    expect(m).toEqual({ status: "method-not-allowed", allow: ["GET", "PUT"] });
    expect(pick("/items/1", "PATCH")).toBe("anyMethod");
    expect(pick("/nothing")).toBe("not-found");
  });
});

describe("RouteTable lookup", () => {
  // The table skips templates on the path's length and compares literals lower-cased once per request:
  // it must pick exactly what trying every template in precedence order with matchRouteTemplate picks.
  const templates = [
    "",
    "a",
    "a/b",
    "A/{x}",
    "a/{x?}",
    "a/{x=d}/c",
    "a/{x=d}",
    "a/{x:int}/{y?}",
    "a/{*rest}",
    "a/b/{**rest=z}",
    "{x}/b",
    "{x}.{ext?}",
    "k/{id}:rotate",
    "{*all}",
    "p/{a}/{b}/{c}",
    "d/{x=v}",
    "e/{x?}/{y=w}",
  ];
  const paths = ["/", "/a", "/A/", "/a/b", "/a/B/c", "/a/1", "/a/1/2", "/a/1/2/3", "/x/b", "/f.txt", "/f", "/k/9:rotate", "/p/1/2/3", "/p/1/2", "/a//b", "/a/%41", "/d", "/d/1", "/e", "/e/1", "/e/1/2"];
  const table = new RouteTable<string>();
  const routes = templates.map((t) => ({ template: t, route: table.add(t, null, t) }));
  const ordered = routes.map((r, order) => ({ ...r, order })).sort((x, y) => comparePrecedence(x.route, y.route) || x.order - y.order);

  it.each(paths)("%s", (path) => {
    const segments = splitPath(path);
    const first = ordered.find((r) => matchRouteTemplate(r.route, segments) !== null);
    const m = table.match(segments, "GET");
    if (!first) {
      expect(m.status).toBe("not-found");
      return;
    }
    expect(m).toMatchObject({ status: "matched", value: first.template, params: matchRouteTemplate(first.route, segments) });
  });

  it("splits paths as before: outer slashes dropped, inner empty segments kept, segments decoded", () => {
    expect(splitPath("")).toEqual([]);
    expect(splitPath("///")).toEqual([]);
    expect(splitPath("//a//b%2Fc//")).toEqual(["a", "", "b/c"]);
    expect(splitPath("/%E0%A4%A")).toEqual(["%E0%A4%A"]);
  });
});
