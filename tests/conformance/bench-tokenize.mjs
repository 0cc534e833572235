// Encode throughput of @lenml/tokenizers on a JSONL corpus, for bench/ (single thread).
// Usage: node bench-tokenize.mjs NAME CORPUS SECONDS → one JSON line {name, bytes, passes, seconds, mb_per_s, cold_mb_per_s, load_ms}
import { readFileSync } from "node:fs";

const [name, corpusPath, secondsArg] = process.argv.slice(2);
const texts = readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l).text);
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);

const t0 = performance.now();
const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
const tokenizer = fromPreTrained();
const loadMs = performance.now() - t0;

let ids = 0;
const coldStart = performance.now();
for (const t of texts) ids += tokenizer.encode(t, { add_special_tokens: false }).length; // warm-up pass
const coldSeconds = (performance.now() - coldStart) / 1000;
const budget = Number(secondsArg) * 1000;
let passes = 0;
const start = performance.now();
while (performance.now() - start < budget) {
  for (const t of texts) tokenizer.encode(t, { add_special_tokens: false });
  passes++;
}
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ name, bytes, ids, passes, seconds, mb_per_s: (bytes * passes) / seconds / 1e6, cold_mb_per_s: bytes / coldSeconds / 1e6, load_ms: loadMs }));
