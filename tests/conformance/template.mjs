// Reference renderings for Attune's chat-template conformance tests.
// Usage: node template.mjs < requests.jsonl > renderings.jsonl
// Each input line {"template": "...", "context": {...}, "now": "2024-07-26T10:30:00Z"?} gives one
// output line {"text": ...} or {"error": ...}: `new Template(template).render(context)` from
// @huggingface/jinja. "now", when present, pins the clock that strftime_now reads, so that both
// sides render the same date; the process runs in UTC for the same reason.
import { createInterface } from "node:readline";
import { Template } from "@huggingface/jinja";

process.env.TZ = "UTC";

const RealDate = Date;

/** Makes `new Date()` (no arguments) and `Date.now()` return `iso` until the next call. */
function pinClock(iso) {
  if (iso === undefined) {
    globalThis.Date = RealDate;
    return;
  }
  const fixed = new RealDate(iso).getTime();
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      super(...(args.length === 0 ? [fixed] : args));
    }
    static now() {
      return fixed;
    }
  };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of lines) {
  if (line.trim() === "") continue;
  const { template, context, now } = JSON.parse(line);
  pinClock(now);
  try {
    out.push(JSON.stringify({ text: new Template(template).render(context ?? {}) }));
  } catch (e) {
    out.push(JSON.stringify({ error: `${e?.name ?? "Error"}: ${e?.message ?? String(e)}` }));
  }
}
pinClock(undefined);
process.stdout.write(out.join("\n") + (out.length > 0 ? "\n" : ""));
