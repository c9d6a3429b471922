/** Control flow: <base/>, choose, include-fragment, return-response, set-status, retry. */
import { type XmlElement } from "../../xml.js";
import { asBool, asInt, asString, ElementLoader, type ElementDef, type Value } from "../load.js";
import { HeaderBag } from "../../runtime/message.js";
import { EndPipeline, SECTIONS, type Run, type Step } from "../types.js";

const ALL = SECTIONS;

const runAll = async (steps: Step[], r: Run) => {
  for (const s of steps) await s.run(r);
};

export const base: ElementDef = {
  sections: ALL,
  attrs: {},
  load: (el, l) => {
    if (l.ctx.inFragment) l.fail(el, "a policy fragment cannot contain <base/>");
    return { element: "base", line: el.line, run: (r) => r.base() };
  },
};

export const choose: ElementDef = {
  sections: ALL,
  attrs: {},
  children: ["when", "otherwise"],
  load: (el, l) => {
    const branches: { when?: Value; steps: Step[] }[] = [];
    el.children.forEach((c, i) => {
      if (c.name === "otherwise" && i !== el.children.length - 1) l.issue(c, "<otherwise> must be the last branch of <choose>");
      for (const name of c.attrs.keys()) if (!(c.name === "when" && name === "condition")) l.issue(c, `<${c.name}> has no attribute '${name}'`);
      if (c.name === "when" && !c.attrs.has("condition")) l.issue(c, "<when> needs the attribute 'condition'");
      const cond = c.name === "when" ? l.attr(c, "condition") : undefined;
      branches.push({ ...(cond ? { when: cond } : {}), steps: l.statements(c.children, c) });
    });
    if (!branches.some((b) => b.when)) l.issue(el, "<choose> needs at least one <when>");
    return {
      element: "choose",
      line: el.line,
      run: async (r) => {
        for (const b of branches) {
          if (!b.when || asBool(b.when(r), "a <when> condition")) return runAll(b.steps, r);
        }
      },
    };
  },
};

export const includeFragment: ElementDef = {
  sections: ALL,
  attrs: { "fragment-id": { required: true } },
  load: (el, l) => {
    const id = l.literal(el, "fragment-id") ?? "";
    if (l.ctx.inFragment) l.fail(el, `fragments cannot include fragments (${l.ctx.inFragment} includes ${id})`);
    const found = l.ctx.fragment(id);
    if (!found) return l.fail(el, `policy fragment '${id}' does not exist (or did not load)`);
    const inner = new ElementLoader({
      ...l.ctx,
      file: found.file,
      inFragment: id,
      issue: (e, m) => l.ctx.issue({ ...e }, `${m} (in fragment '${id}', ${found.file}:${e.line}, included from ${l.ctx.file}:${el.line})`),
    });
    for (const c of found.el.children) {
      if ((SECTIONS as readonly string[]).includes(c.name)) inner.issue(c, `a policy fragment cannot contain the section <${c.name}>`);
    }
    const steps = inner.statements(found.el.children.filter((c) => !(SECTIONS as readonly string[]).includes(c.name)), found.el);
    return { element: "include-fragment", line: el.line, run: (r) => runAll(steps, r) };
  },
};

function responseParts(el: XmlElement, l: ElementLoader) {
  let status: { code?: Value; reason?: Value } | undefined;
  const headers: { name: string; action: string; values: Value[] }[] = [];
  let body: Value | undefined;
  for (const c of el.children) {
    if (c.name === "set-status") {
      status = { ...optional("code", l.attr(c, "code")), ...optional("reason", l.attr(c, "reason")) };
      for (const k of c.attrs.keys()) if (k !== "code" && k !== "reason") l.issue(c, `<set-status> has no attribute '${k}'`);
    } else if (c.name === "set-header") {
      headers.push({ name: l.literal(c, "name") ?? "", action: c.attrs.get("exists-action") ?? "override", values: c.children.map((v) => l.text(v)) });
    } else if (c.name === "set-body") {
      body = l.text(c);
    }
  }
  return { status, headers, body };
}

const optional = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));

export const returnResponse: ElementDef = {
  sections: ALL,
  attrs: { "response-variable-name": {} },
  children: ["set-status", "set-header", "set-body"],
  load: (el, l) => {
    if (el.attrs.has("response-variable-name")) l.fail(el, "response-variable-name (send-request results) is not implemented by the local gateway");
    const parts = responseParts(el, l);
    return {
      element: "return-response",
      line: el.line,
      run: async (r) => {
        // "Default response is 200 OK with no body"; the body of the current context is removed.
        const headers = new HeaderBag();
        const status = parts.status?.code ? asInt(parts.status.code(r), "set-status code") : 200;
        const reason = parts.status?.reason ? asString(parts.status.reason(r)) : status === 200 ? "OK" : "";
        for (const h of parts.headers) {
          const values = h.values.map((v) => asString(v(r)));
          if (h.action === "delete") headers.delete(h.name);
          else if (h.action === "append") for (const v of values) headers.append(h.name, v);
          else if (!(h.action === "skip" && headers.has(h.name))) headers.set(h.name, values);
        }
        const body = parts.body ? Buffer.from(asString(parts.body(r)), "utf8") : undefined;
        r.state.response = { status, reason, headers, body };
        throw new EndPipeline();
      },
    };
  },
};

export const setStatus: ElementDef = {
  sections: ALL,
  attrs: { code: { required: true, expr: true }, reason: { required: true, expr: true } },
  load: (el, l) => {
    const code = l.attr(el, "code")!;
    const reason = l.attr(el, "reason")!;
    return {
      element: "set-status",
      line: el.line,
      run: async (r) => {
        const status = asInt(code(r), "set-status code");
        r.state.response ??= { status, reason: "", headers: new HeaderBag(), body: undefined };
        r.state.response.status = status;
        r.state.response.reason = asString(reason(r));
      },
    };
  },
};

export const retry: ElementDef = {
  sections: ALL,
  attrs: {
    condition: { required: true, expr: true },
    count: { required: true, expr: true },
    interval: { required: true, expr: true },
    "max-interval": { expr: true },
    delta: { expr: true },
    "first-fast-retry": { expr: true, pattern: /^(true|false)$/ },
  },
  statements: true,
  load: (el, l) => {
    const condition = l.attr(el, "condition")!;
    const count = l.attr(el, "count")!;
    const interval = l.attr(el, "interval")!;
    const maxInterval = l.attr(el, "max-interval");
    const delta = l.attr(el, "delta");
    const fast = l.attr(el, "first-fast-retry");
    const steps = l.statements(el.children, el);
    return {
      element: "retry",
      line: el.line,
      run: async (r) => {
        const n = asInt(count(r), "retry count");
        const base = asInt(interval(r), "retry interval");
        const d = delta ? asInt(delta(r), "retry delta") : undefined;
        const max = maxInterval ? asInt(maxInterval(r), "retry max-interval") : undefined;
        const firstFast = fast ? asBool(fast(r), "first-fast-retry") : false;
        await runAll(steps, r);
        for (let attempt = 1; attempt <= n && asBool(condition(r), "retry condition"); attempt++) {
          // Fixed, linear (interval + delta) or exponential (with max-interval) waits, as documented.
          let wait = base;
          if (d !== undefined && max === undefined) wait = base + (attempt - 1) * d;
          if (d !== undefined && max !== undefined) wait = Math.min(max, base + (2 ** (attempt - 1) - 1) * d);
          if (!(firstFast && attempt === 1) && wait > 0) await r.services.sleep(wait * 1000);
          await runAll(steps, r);
        }
      },
    };
  },
};
