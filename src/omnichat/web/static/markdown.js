// A small Markdown renderer that builds DOM nodes. Message text only ever becomes text nodes
// (textContent) or a checked href: no HTML is parsed, so <script>, <img onerror=...> and the like
// show as the characters they are. Links keep an href only for http:, https: and mailto:.
//
// Blocks: paragraphs, ATX headings, fenced code, lists (nested by indentation), blockquotes,
// horizontal rules. Inline: code spans, **strong**, *em*, ~~strike~~, links, autolinks, bare
// URLs, backslash escapes, hard line breaks, and [n] citations through a callback.

import { h } from "./dom.js";

const MAX_DEPTH = 8;
const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const QUOTE = /^ {0,3}>[ ]?(.*)$/;
const LIST = /^([ \t]*)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
// Sticky (y): matched at a position, without copying the rest of the text.
const BARE_URL = /(?:https?:\/\/|mailto:)[^\s<>"]*[^\s<>".,:;'!?)\]*_~]/iy;
const AUTOLINK = /<((?:https?|mailto):[^\s<>]+)>/iy;
const CITATION = /\[(\d{1,3})\](?!\()/y;

function matchAt(re, text, i) {
  re.lastIndex = i;
  return re.exec(text);
}

/** The href for a link destination, or null when it is not http:, https: or mailto:. */
export function safeUrl(raw) {
  let value = String(raw).trim();
  if (value.startsWith("<") && value.endsWith(">")) value = value.slice(1, -1);
  let url;
  try {
    url = new URL(value); // relative and malformed URLs throw: no href for them
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

/**
 * Render Markdown into a DocumentFragment.
 * options.citation(n): a node standing for citation [n], or null to leave "[n]" as text.
 */
export function renderMarkdown(text, options = {}) {
  const ctx = { citation: options.citation || null, inLink: false, depth: 0 };
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(lines, ctx, 0));
  return fragment;
}

// -- blocks ------------------------------------------------------------------------------------

function indentOf(line) {
  let width = 0;
  for (const ch of line) {
    if (ch === " ") width += 1;
    else if (ch === "\t") width += 4 - (width % 4);
    else break;
  }
  return width;
}

function dedent(line, columns) {
  let width = 0;
  let i = 0;
  while (i < line.length && width < columns && (line[i] === " " || line[i] === "\t")) {
    width += line[i] === "\t" ? 4 - (width % 4) : 1;
    i += 1;
  }
  return line.slice(i);
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) ||
    LIST.test(line);
}

function blocks(lines, ctx, depth) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      i += 1;
    } else if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !closesFence(lines[i], fence)) body.push(lines[i++]);
      i += 1;
      out.push(codeBlock(body.join("\n"), m[2]));
    } else if ((m = HEADING.exec(line))) {
      // Inside a message, # is the third level of the page's outline.
      const level = Math.min(m[1].length + 2, 6);
      out.push(h(`h${level}`, {}, inline(m[2] || "", ctx)));
      i += 1;
    } else if (HR.test(line)) {
      out.push(h("hr"));
      i += 1;
    } else if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const inner = [];
      while (i < lines.length && lines[i].trim()) {
        const q = QUOTE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (startsBlock(lines[i])) break;
        else inner.push(lines[i]); // lazy continuation of the quoted paragraph
        i += 1;
      }
      out.push(h("blockquote", {}, blocks(inner, ctx, depth + 1)));
    } else if (LIST.test(line) && depth < MAX_DEPTH) {
      const [list, next] = parseList(lines, i, ctx, depth);
      out.push(list);
      i = next;
    } else {
      const para = [line.trim()];
      i += 1;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
        para.push(lines[i].trim());
        i += 1;
      }
      out.push(h("p", {}, inline(para.join("\n"), ctx)));
    }
  }
  return out;
}

function closesFence(line, fence) {
  const trimmed = line.trim();
  return trimmed.length >= fence.length && trimmed === fence[0].repeat(trimmed.length) &&
    indentOf(line) < 4;
}

function codeBlock(code, info) {
  const language = /^[\w+#.-]{1,20}$/.test(info || "") ? info : "";
  const codeNode = h("code", {}, code);
  const copy = h("button", {
    type: "button",
    class: "copy-code",
    "aria-label": "Copy code",
    onclick: () => {
      navigator.clipboard?.writeText(code).then(() => {
        copy.textContent = "Copied";
      }, () => {});
    },
  }, "Copy");
  return h("div", { class: "code-block" },
    h("div", { class: "code-head" }, h("span", {}, language || "code"), copy),
    h("pre", {}, codeNode));
}

function parseList(lines, start, ctx, depth) {
  const first = LIST.exec(lines[start]);
  const baseIndent = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? "ol" : "ul");
  if (ordered && Number.parseInt(first[2], 10) !== 1) {
    list.setAttribute("start", String(Number.parseInt(first[2], 10)));
  }
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const m = LIST.exec(lines[i]);
    if (!m || indentOf(m[1]) > baseIndent + 1 || /\d/.test(m[2]) !== ordered) break;
    const contentColumn = indentOf(m[1]) + m[2].length + 1;
    const content = [m[3] || ""];
    i += 1;
    let blankBefore = false;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        blankBefore = true;
        content.push("");
        i += 1;
        continue;
      }
      const indent = indentOf(line);
      if (indent > baseIndent + 1) {
        content.push(dedent(line, contentColumn));
      } else if (!blankBefore && !startsBlock(line)) {
        content.push(line.trim()); // lazy continuation
      } else {
        break;
      }
      if (blankBefore) loose = true;
      blankBefore = false;
      i += 1;
    }
    while (content.length && !content[content.length - 1].trim()) content.pop();
    items.push(content);
    const next = i < lines.length ? LIST.exec(lines[i]) : null;
    if (blankBefore && next && indentOf(next[1]) <= baseIndent + 1 &&
        /\d/.test(next[2]) === ordered) {
      loose = true; // a blank line between two items of this list
    }
  }
  for (const content of items) {
    const children = blocks(content, ctx, depth + 1);
    const item = h("li");
    for (const child of children) {
      if (!loose && child.tagName === "P") item.append(...child.childNodes);
      else item.append(child);
    }
    list.append(item);
  }
  return [list, i];
}

// -- inline ------------------------------------------------------------------------------------

function runLength(text, i, ch, max = Infinity) {
  let j = i;
  while (text[j] === ch && j - i < max) j += 1;
  return j - i;
}

function inline(text, ctx) {
  const out = [];
  let buffer = "";
  const flush = () => {
    if (buffer) out.push(document.createTextNode(buffer));
    buffer = "";
  };
  const emit = (node) => {
    flush();
    out.push(node);
  };
  const closers = new Map();
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    let m;
    if (c === "\\" && i + 1 < text.length && PUNCT.includes(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
    } else if (c === "\n") {
      emit(h("br"));
      i += 1;
    } else if (c === "`") {
      const run = runLength(text, i, "`");
      const close = text.indexOf("`".repeat(run), i + run);
      if (close >= 0 && runLength(text, close, "`") === run) {
        let code = text.slice(i + run, close).replace(/\n/g, " ");
        if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ")) code = code.slice(1, -1);
        emit(h("code", {}, code));
        i = close + run;
      } else {
        buffer += "`".repeat(run);
        i += run;
      }
    } else if ((c === "[" || (c === "!" && text[i + 1] === "[")) && !ctx.inLink &&
        (m = parseLink(text, c === "!" ? i + 1 : i))) {
      emit(linkNode(m, ctx, text.slice(i, m.end)));
      i = m.end;
    } else if (c === "[" && ctx.citation && !ctx.inLink && (m = matchAt(CITATION, text, i)) &&
        ctx.citation(Number(m[1]))) {
      emit(ctx.citation(Number(m[1])));
      i += m[0].length;
    } else if (c === "<" && !ctx.inLink && (m = matchAt(AUTOLINK, text, i)) && safeUrl(m[1])) {
      emit(anchor(safeUrl(m[1]), m[1]));
      i += m[0].length;
    } else if ((c === "h" || c === "H" || c === "m" || c === "M") && !ctx.inLink &&
        (i === 0 || !/[\w/]/.test(text[i - 1])) && (m = matchAt(BARE_URL, text, i)) && safeUrl(m[0])) {
      emit(anchor(safeUrl(m[0]), m[0]));
      i += m[0].length;
    } else if ((c === "*" || c === "_" || c === "~") && ctx.depth < MAX_DEPTH &&
        (m = emphasis(text, i, closers))) {
      ctx.depth += 1;
      try {
        emit(h(m.tag, {}, inline(text.slice(m.start, m.end), ctx)));
      } finally {
        ctx.depth -= 1;
      }
      i = m.close;
    } else {
      buffer += c;
      i += 1;
    }
  }
  flush();
  return out;
}

/**
 * A **strong**, *em* or ~~del~~ span starting at i: {tag, start, end, close} or null.
 * Whether a delimiter can close depends only on where it is, so the first closer found after a
 * position is remembered (``closers``, per inline text): no text makes this quadratic.
 */
function emphasis(text, i, closers) {
  const ch = text[i];
  const run = runLength(text, i, ch, 3);
  if (ch === "~" && run !== 2) return null;
  const size = ch === "~" ? 2 : Math.min(run, 2);
  const start = i + size;
  if (!text[start] || /\s/.test(text[start])) return null;
  if (ch === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1])) return null;
  const key = ch.repeat(size);
  const from = start + 1;
  let known = closers.get(key);
  if (!known || known.from > from || (known.end !== -1 && known.end < from)) {
    known = { from, end: findCloser(text, key, from) };
    closers.set(key, known);
  }
  if (known.end === -1 || known.end - start > 4096) return null;
  const tag = ch === "~" ? "del" : size === 2 ? "strong" : "em";
  return { tag, start, end: known.end, close: known.end + size };
}

function findCloser(text, delimiter, from) {
  const ch = delimiter[0];
  const size = delimiter.length;
  let j = text.indexOf(delimiter, from);
  while (j >= 0) {
    let end = j;
    while (text[end + size] === ch) end += 1; // close at the last delimiter of a run
    const after = text[end + size];
    if (!/\s/.test(text[end - 1]) && (ch !== "_" || !after || !/[\p{L}\p{N}]/u.test(after))) {
      return end;
    }
    j = text.indexOf(delimiter, end + size);
  }
  return -1;
}

/** [label](destination "title") starting at i: {label, destination, title, end} or null. */
function parseLink(text, i) {
  if (text[i] !== "[") return null;
  let depth = 0;
  let j = i;
  const limit = Math.min(text.length, i + 2048);
  for (; j < limit; j += 1) {
    if (text[j] === "\\") j += 1;
    else if (text[j] === "[" && ++depth > 16) return null;
    else if (text[j] === "]" && --depth === 0) break;
  }
  if (j >= limit || text[j + 1] !== "(") return null;
  const label = text.slice(i + 1, j);
  let k = j + 2;
  let parens = 1;
  for (; k < limit; k += 1) {
    if (text[k] === "\\") k += 1;
    else if (text[k] === "(" && ++parens > 16) return null;
    else if (text[k] === ")" && --parens === 0) break;
    else if (text[k] === "\n") return null;
  }
  if (k >= limit) return null;
  const inside = text.slice(j + 2, k).trim();
  const m = /^(<[^>]*>|\S+)(?:\s+"([^"]*)")?$/.exec(inside);
  if (!m) return null;
  const destination = m[1].replace(/\\([!-/:-@[-`{-~])/g, "$1");
  return { label, destination, title: m[2] || null, end: k + 1 };
}

function linkNode(link, ctx, source) {
  const href = safeUrl(link.destination);
  if (!href) return document.createTextNode(source); // unsafe or relative: shown as written
  const node = anchor(href, "", link.title);
  ctx.inLink = true;
  try {
    node.append(...inline(link.label, ctx));
  } finally {
    ctx.inLink = false;
  }
  if (!node.textContent) node.textContent = href;
  return node;
}

function anchor(href, text, title = null) {
  return h("a", { href, title, target: "_blank", rel: "noopener noreferrer nofollow" }, text);
}
