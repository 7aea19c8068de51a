// sse.js: reading a text/event-stream response body from fetch() (EventSource cannot POST or be aborted).
//
// export class SSEParser      push(chunk) -> [data strings] of every event the chunk completed
// export async function* readEvents(response)   yields each event's JSON object; ends at `data: [DONE]`
//
// Hand-written because it is twenty lines of the HTML event-stream rules and the pages have no dependencies:
// events end at a blank line, lines end in \n, \r\n or \r, `data:` lines of one event join with \n,
// lines starting with ":" are comments, other fields (event:, id:, retry:) are ignored.

export class SSEParser {
  constructor() {
    this.buf = "";
    this.data = [];
  }

  push(chunk) {
    this.buf += chunk;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      // a lone \r at the very end may be the first half of \r\n: wait for the next chunk
      if (!m || (m[0] === "\r" && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === "") {
        if (this.data.length) out.push(this.data.join("\n"));
        this.data = [];
      } else if (line.startsWith("data:")) {
        this.data.push(line.slice(5).replace(/^ /, ""));
      } else if (line === "data") {
        this.data.push("");
      }
    }
    return out;
  }

  // what an unterminated last event held when the stream closed
  end() {
    const out = this.push("\n\n");
    this.buf = "";
    return out;
  }
}

export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      const datas = done ? parser.push(decoder.decode()).concat(parser.end()) : parser.push(decoder.decode(value, { stream: true }));
      for (const data of datas) {
        if (data === "[DONE]") return;
        let event;
        try {
          event = JSON.parse(data);
        } catch {
          continue; // not JSON: not one of ours
        }
        yield event;
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}
