import { SaxesParser } from "saxes";

/** An element of a policy document, with where it starts (1-based line and column) for load errors. */
export interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  /** Concatenated character data directly inside the element (entities decoded). */
  text: string;
  line: number;
  column: number;
}

export class XmlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

/**
 * Parses one XML document into a small element tree. saxes is a conformant, streaming XML parser; it
 * reports positions, which the gateway uses to name the line of every element it refuses to load.
 */
export function parseXml(text: string): XmlElement {
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let failure: XmlSyntaxError | undefined;
  parser.on("error", (err) => {
    failure ??= new XmlSyntaxError(err.message, parser.line, parser.column);
  });
  // The position when a tag is complete is its end; the one at its start is what a reader looks for.
  let start = { line: 1, column: 1 };
  parser.on("opentagstart", () => {
    start = { line: parser.line, column: Math.max(1, parser.column - 1) };
  });
  parser.on("opentag", (tag) => {
    const el: XmlElement = { name: tag.name, attrs: new Map(), children: [], text: "", line: start.line, column: start.column };
    for (const [k, v] of Object.entries(tag.attributes)) el.attrs.set(k, typeof v === "string" ? v : v.value);
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else root ??= el;
    stack.push(el);
  });
  parser.on("closetag", () => {
    stack.pop();
  });
  const onText = (t: string) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  };
  parser.on("text", onText);
  parser.on("cdata", onText);
  parser.write(text).close();
  if (failure) throw failure;
  if (!root) throw new XmlSyntaxError("the document has no root element", 1, 1);
  return root;
}
