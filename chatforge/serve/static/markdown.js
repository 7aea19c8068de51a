// markdown.js: safe Markdown rendering of model output for the chat, rater and admin pages.
//
// export renderMarkdown(text) -> DocumentFragment
//
// Hand-written because the pages must work offline with no build step and no third-party code; the usual
// choice (marked + DOMPurify) would need both vendored. Everything is built with createElement/textContent, so
// model text can never become markup: "<script>" stays the characters "<script>". Supported: paragraphs (a
// single newline is a line break), # headings, **bold**/__bold__, *italic*/_italic_, ~~strike~~, `code`,
// fenced code blocks (``` or ~~~, an unclosed fence runs to the end, as while streaming), - * + and 1. lists
// (nested by indentation), > quotes, --- rules, [text](url) and bare/<url> links. Links are made only for
// http(s) URLs (target _blank, rel "noopener noreferrer nofollow"); any other link, and every image
// ![alt](url), is rendered as the text it was written as. No element this file makes has an event handler
// attribute, a style, or a src.

const MAX_DEPTH = 12; // nesting of quotes/lists/emphasis before the rest is shown as plain text
const MAX_LINK = 2000; // the longest [text] or (url) looked for

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const BULLET = /^( *)([-*+])[ \t]+(.*)$/;
const ORDERED = /^( *)(\d{1,9})([.)])[ \t]+(.*)$/;
const SAFE_URL = /^https?:\/\/[^\s<>"]+$/i;
const BARE_URL = /^https?:\/\/[^\s<>"'`]+/i;
const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n");
  renderBlocks(lines, frag, 0);
  return frag;
}

// --- blocks ---

function isBlank(line) {
  return line.trim() === "";
}

function listMatch(line) {
  const b = BULLET.exec(line);
  if (b) return { ordered: false, indent: b[1].length, marker: b[2], start: 1, text: b[3], width: b[1].length + 2 };
  const o = ORDERED.exec(line);
  if (o) {
    return { ordered: true, indent: o[1].length, marker: o[3], start: parseInt(o[2], 10), text: o[4],
             width: o[1].length + o[2].length + 2 };
  }
  return null;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || listMatch(line) !== null;
}

function renderBlocks(lines, parent, depth) {
  if (depth > MAX_DEPTH) {
    const p = document.createElement("p");
    p.textContent = lines.join("\n");
    parent.appendChild(p);
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) { i = renderFence(lines, i, m, parent); continue; }
    if ((m = HEADING.exec(line))) {
      const h = document.createElement("h" + m[1].length);
      renderInline(m[2] || "", h, depth);
      parent.appendChild(h);
      i++;
      continue;
    }
    if (RULE.test(line)) { parent.appendChild(document.createElement("hr")); i++; continue; }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
      const q = document.createElement("blockquote");
      renderBlocks(inner, q, depth + 1);
      parent.appendChild(q);
      continue;
    }
    if (listMatch(line)) { i = renderList(lines, i, parent, depth); continue; }
    // a paragraph: lines up to a blank line or the start of another block; single newlines become <br>
    const para = [];
    while (i < lines.length && !isBlank(lines[i]) && (para.length === 0 || !startsBlock(lines[i]))) {
      para.push(lines[i].trim());
      i++;
    }
    const p = document.createElement("p");
    para.forEach((l, k) => {
      if (k > 0) p.appendChild(document.createElement("br"));
      renderInline(l, p, depth);
    });
    parent.appendChild(p);
  }
}

function renderFence(lines, i, m, parent) {
  const fence = m[1];
  const close = new RegExp("^ {0,3}" + fence[0] + "{" + fence.length + ",}\\s*$");
  const body = [];
  i++;
  while (i < lines.length && !close.test(lines[i])) { body.push(lines[i]); i++; }
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  const lang = m[2];
  if (/^[A-Za-z0-9_+-]{1,30}$/.test(lang)) {
    code.className = "language-" + lang;
    pre.dataset.lang = lang;
  }
  code.textContent = body.join("\n");
  pre.appendChild(code);
  parent.appendChild(pre);
  return i + 1; // past the closing fence (or the end)
}

function renderList(lines, i, parent, depth) {
  const first = listMatch(lines[i]);
  const list = document.createElement(first.ordered ? "ol" : "ul");
  if (first.ordered && first.start !== 1) list.start = first.start;
  const items = [];
  while (i < lines.length) {
    const m = listMatch(lines[i]);
    if (!m || m.ordered !== first.ordered || m.indent >= first.width || m.indent > first.indent + 3) break;
    // the item: its first line, then every following line indented past the marker (or blank inside the item)
    const body = [m.text];
    i++;
    while (i < lines.length) {
      const l = lines[i];
      const indent = l.length - l.trimStart().length;
      if (isBlank(l)) {
        const next = lines.slice(i + 1).find((x) => !isBlank(x));
        if (next !== undefined && next.length - next.trimStart().length >= m.width) { body.push(""); i++; continue; }
        break;
      }
      if (indent >= m.width) { body.push(l.slice(Math.min(indent, m.width))); i++; continue; }
      if (listMatch(l) || startsBlock(l)) break;
      body.push(l.trim()); // a lazy continuation line of the item's paragraph
      i++;
    }
    items.push(body);
    while (i < lines.length && isBlank(lines[i])) {
      const next = lines.slice(i + 1).find((x) => !isBlank(x));
      const nm = next === undefined ? null : listMatch(next);
      if (nm && nm.ordered === first.ordered && nm.indent < first.width) i++;
      else break;
    }
  }
  for (const body of items) {
    const li = document.createElement("li");
    const simple = body.every((l) => !isBlank(l) && !startsBlock(l));
    if (simple) {
      body.forEach((l, k) => {
        if (k > 0) li.appendChild(document.createElement("br"));
        renderInline(l.trim(), li, depth + 1);
      });
    } else {
      // the first line is text even if it looks like a block ("- # x" is an item saying "# x" as a heading)
      renderBlocks(body, li, depth + 1);
      if (!body.some(isBlank)) {
        // a tight item ("- **b**" then a nested list): its text is not wrapped in <p>
        for (const p of [...li.children].filter((c) => c.nodeName === "P")) p.replaceWith(...p.childNodes);
      }
    }
    list.appendChild(li);
  }
  parent.appendChild(list);
  return i;
}

// --- inline ---

function httpUrl(url) {
  url = url.trim();
  if (url.startsWith("<") && url.endsWith(">")) url = url.slice(1, -1);
  if (!SAFE_URL.test(url)) return null;
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function link(href, parent) {
  const a = document.createElement("a");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  parent.appendChild(a);
  return a;
}

// the end of a [text](url) starting at s[i] === "[", as {text, url, end}, or null
function linkAt(s, i) {
  const stop = Math.min(s.length, i + MAX_LINK); // bounded, so "[[[[…" stays linear
  let level = 0, j = i;
  for (; j < stop; j++) {
    if (s[j] === "\\") { j++; continue; }
    if (s[j] === "[") level++;
    else if (s[j] === "]" && --level === 0) break;
  }
  if (j >= stop || s[j + 1] !== "(") return null;
  const end = Math.min(s.length, j + 2 + MAX_LINK);
  let k = j + 2, parens = 1;
  for (; k < end; k++) {
    if (s[k] === "(") parens++;
    else if (s[k] === ")" && --parens === 0) break;
  }
  if (k >= end) return null;
  const target = s.slice(j + 2, k).trim().split(/\s+/)[0] || "";
  return { text: s.slice(i + 1, j), url: target, end: k + 1 };
}

// where the emphasis opened by `delim` at s[i] closes, or -1
function closeAt(s, i, delim) {
  const ch = delim[0];
  let from = i + delim.length;
  if (from >= s.length || /\s/.test(s[from])) return -1;
  if (ch === "_" && i > 0 && /[\p{L}\p{N}]/u.test(s[i - 1])) return -1; // snake_case is not emphasis
  for (;;) {
    let j = s.indexOf(delim, from);
    if (j < 0) return -1;
    while (s[j + delim.length] === ch) j++; // "***x***": close on the last two stars
    if (j > i + delim.length && !/\s/.test(s[j - 1]) &&
        !(ch === "_" && /[\p{L}\p{N}]/u.test(s[j + delim.length] || ""))) return j;
    from = j + 1;
  }
}

function renderInline(s, parent, depth) {
  let buf = "";
  const flush = () => {
    if (buf) parent.appendChild(document.createTextNode(buf));
    buf = "";
  };
  const wrap = (tag, inner) => {
    flush();
    const el = document.createElement(tag);
    if (depth < MAX_DEPTH) renderInline(inner, el, depth + 1);
    else el.textContent = inner;
    parent.appendChild(el);
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "\\" && i + 1 < s.length && PUNCT.includes(s[i + 1])) { buf += s[i + 1]; i += 2; continue; }
    if (c === "`") {
      let n = 1;
      while (s[i + n] === "`") n++;
      const run = "`".repeat(n);
      let j = s.indexOf(run, i + n);
      while (j >= 0 && s[j + n] === "`") { // a longer run is not the closer
        let e = j;
        while (s[e] === "`") e++;
        j = s.indexOf(run, e);
      }
      if (j < 0) { buf += run; i += n; continue; }
      flush();
      const code = document.createElement("code");
      let inner = s.slice(i + n, j);
      if (inner.length > 2 && inner.startsWith(" ") && inner.endsWith(" ")) inner = inner.slice(1, -1);
      code.textContent = inner;
      parent.appendChild(code);
      i = j + n;
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const double = s[i + 1] === c;
      if (c === "~" && !double) { buf += c; i++; continue; }
      const delim = double ? c + c : c;
      const j = closeAt(s, i, delim);
      if (j >= 0) {
        wrap(c === "~" ? "del" : double ? "strong" : "em", s.slice(i + delim.length, j));
        i = j + delim.length;
        continue;
      }
      buf += delim;
      i += delim.length;
      continue;
    }
    if (c === "!" && s[i + 1] === "[") {
      // images are never shown: the whole ![alt](url) stays text
      const l = linkAt(s, i + 1);
      if (l) { buf += s.slice(i, l.end); i = l.end; continue; }
    }
    if (c === "[") {
      const l = linkAt(s, i);
      if (l) {
        const href = httpUrl(l.url);
        if (href && l.text.trim()) {
          flush();
          const a = link(href, parent);
          // no links inside links: the text is rendered with its brackets kept as text
          renderInline(l.text.replace(/\[/g, "\\[").replace(/\]/g, "\\]"), a, depth + 1);
        } else {
          buf += s.slice(i, l.end); // a javascript:, data:, relative or empty link stays what was written
        }
        i = l.end;
        continue;
      }
    }
    if (c === "<") {
      const j = s.indexOf(">", i);
      const href = j > 0 ? httpUrl(s.slice(i + 1, j)) : null;
      if (href) {
        flush();
        link(href, parent).textContent = s.slice(i + 1, j);
        i = j + 1;
        continue;
      }
    }
    if ((c === "h" || c === "H") && (i === 0 || !/[\p{L}\p{N}/]/u.test(s[i - 1]))) {
      const m = BARE_URL.exec(s.slice(i));
      if (m) {
        let url = m[0].replace(/[.,;:!?*_~]+$/, "");
        while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) {
          url = url.slice(0, -1);
        }
        const href = httpUrl(url);
        if (href) {
          flush();
          link(href, parent).textContent = url;
          i += url.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
}
