// llama.mjs: llama.cpp as a conformance peer, driven through node-llama-cpp.
//
// Attune's engine is checked against llama.cpp on the same GGUF file: the same
// token ids in, and we compare next-token log-probabilities, greedy
// continuations, tokenization and rough speed. This script is the llama.cpp
// side. It reads one JSON request per line on stdin and writes one JSON answer
// per line on stdout, in the same order. Logs go to stderr only.
//
//   node llama.mjs MODEL.gguf [--threads N] [--context N] [--batch N]
//                  [--kv-type F16|F32] [--flash-attn on|off|auto] [--verbose]
//                  < requests.jsonl > answers.jsonl
//
// Requests (each one starts from an empty sequence: history is cleared first):
//   {"op":"tokenize","text":"...","special":true|false}  -> {"ids":[...]}
//       model.tokenize(text, special): llama.cpp's tokenizer with
//       add_special=false, so no BOS/EOS is ever added; "special" only says
//       whether text such as "<|im_end|>" may become the special token.
//   {"op":"detokenize","ids":[...],"special":true|false} -> {"text":"..."}
//   {"op":"next","ids":[...],"top":K}                    -> {"top":[[id,logprob],...]}
//       The K (default 10) most likely next tokens after the prompt, most likely first
//       (ties: lower id first). logprob is the natural log. It comes from the
//       RAW LOGITS of the whole vocabulary: sequence.controlledEvaluate() with
//       generateNext.logits = true on the last prompt token, then an exact
//       log-softmax done here in float64 (logit - logsumexp). No sampler touches
//       those logits: with no sampling options node-llama-cpp's chain is only
//       the greedy picker, which does not change them.
//       Optional "via":"probabilities" takes the probability map of
//       evaluateWithMetadata(ids, {probabilities:true}, {temperature:0})
//       instead. At temperature 0 that map also covers the whole vocabulary
//       (no top-k/top-p/min-p), but it is a float32 softmax done in C++ and
//       exp() can underflow to 0 for very unlikely tokens (then logprob is
//       -Infinity, written as null).
//   {"op":"greedy","ids":[...],"n":N}                    -> {"ids":[...]}
//       N tokens from sequence.evaluate(ids, {temperature:0,
//       yieldEogToken:true}). temperature 0 is llama.cpp's greedy sampler
//       (argmax, first = lowest id on ties). yieldEogToken:true makes it
//       go on past EOS/EOT instead of stopping, so exactly N ids come back.
//   {"op":"bench","prompt_tokens":P,"gen_tokens":G,"ids":[...optional...],
//    "warmup":true}                                      -> {"prompt_tps":..,"gen_tps":..,"rss_mb":..}
//       Prompt processing of P tokens as one batch (P <= --batch), timed up to
//       the first sampled token; then G single-token greedy steps. Without
//       "ids", the prompt is a tokenized filler text cut to P tokens; with
//       "ids", they are repeated or cut to P. "warmup" (default true) first
//       runs the same shapes once, untimed. rss_mb is VmHWM (peak resident
//       set of this whole node process) from /proc/self/status, in MiB.
//   {"op":"info"}  -> facts about the loaded model and the llama.cpp build.
// A request that fails is answered with {"error":"..."}, and the next goes on.
// Exit status: 0 when every request was answered, 1 when any failed or the
// model could not be loaded, 2 for a bad command line.
//
// Settings: CPU only (gpu:false, gpuLayers:0) with the prebuilt binaries of
// @node-llama-cpp/linux-x64; build:"never" and skipDownload:true, so nothing
// is ever compiled or downloaded. Context defaults to 1024 tokens, batch to the
// context size (so any prompt that fits goes in one batch; n_ubatch = n_batch
// in node-llama-cpp), threads to 2. The KV cache is F16 by default, as in
// stock llama.cpp (--kv-type F32 for a closer match with an F32 engine), and
// flash attention is off unless --flash-attn says otherwise.
// A request whose prompt plus generated tokens would not fit in the context
// is refused rather than letting node-llama-cpp shift the context.
//
// Timing caveat: node-llama-cpp attaches no persistent ggml threadpool, so with
// --threads > 1 every decode call starts its worker threads afresh. Prompt
// processing still scales, but single-token generation with --threads 2 on a
// 2-core machine came out 2-50x slower than with --threads 1 (and erratic).
// Compare generation speed at --threads 1, or at equal settings on both sides
// knowing this overhead is in llama.cpp's number.

import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function usage(msg) {
    if (msg) process.stderr.write(`llama.mjs: ${msg}\n`);
    process.stderr.write("usage: node llama.mjs MODEL.gguf [--threads N] [--context N] [--batch N] " +
        "[--kv-type F16|F32] [--flash-attn on|off|auto] [--verbose] < requests.jsonl > answers.jsonl\n");
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { model: null, threads: 2, context: 1024, batch: null, kvType: "F16", flashAttn: "off", verbose: false };
    const int = (name, v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n <= 0) usage(`${name} needs a positive integer, got ${v}`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
        if (a === "--threads") opts.threads = int(a, next());
        else if (a === "--context") opts.context = int(a, next());
        else if (a === "--batch") opts.batch = int(a, next());
        else if (a === "--kv-type") {
            opts.kvType = String(next()).toUpperCase();
            if (opts.kvType !== "F16" && opts.kvType !== "F32") usage("--kv-type is F16 or F32");
        } else if (a === "--flash-attn") {
            opts.flashAttn = next();
            if (!["on", "off", "auto"].includes(opts.flashAttn)) usage("--flash-attn is on, off or auto");
        } else if (a === "--verbose") opts.verbose = true;
        else if (a === "-h" || a === "--help") usage();
        else if (a.startsWith("--")) usage(`unknown option ${a}`);
        else if (opts.model == null) opts.model = a;
        else usage(`unexpected argument ${a}`);
    }
    if (opts.model == null) usage("no model given");
    if (opts.batch == null) opts.batch = Math.max(512, opts.context);
    return opts;
}

function peakRssMiB() {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) / 1024 : null;
}

function checkIds(ids, what = "ids") {
    if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0))
        throw new Error(`${what} must be an array of non-negative integers`);
    return ids;
}

function checkCount(v, name) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`);
    return v;
}

// Sort [id, value] pairs by value descending, then id ascending.
const byValueThenId = (a, b) => (b[1] - a[1]) || (a[0] - b[0]);

const opts = parseArgs(process.argv.slice(2));

let llama, model, context, sequence;
try {
    llama = await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        maxThreads: opts.threads,
        logLevel: opts.verbose ? LlamaLogLevel.debug : LlamaLogLevel.warn,
        logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message.endsWith("\n") ? message : message + "\n"}`),
    });
    model = await llama.loadModel({ modelPath: opts.model, gpuLayers: 0 });
    context = await model.createContext({
        contextSize: opts.context,
        batchSize: opts.batch,
        threads: opts.threads,
        sequences: 1,
        flashAttention: opts.flashAttn === "auto" ? "auto" : opts.flashAttn === "on",
        experimentalKvCacheKeyType: opts.kvType,
        experimentalKvCacheValueType: opts.kvType,
    });
    sequence = context.getSequence();
} catch (e) {
    process.stderr.write(`llama.mjs: could not load ${opts.model}: ${e?.message ?? e} (llama.cpp's own messages are above)\n`);
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
    process.exit(1);
}
const nCtx = context.contextSize;

async function fresh() {
    await sequence.clearHistory();
}

function fits(promptLen, genLen) {
    // generating N tokens feeds N-1 of them back, so prompt + N - 1 cells are used
    if (promptLen + Math.max(0, genLen - 1) > nCtx)
        throw new Error(`prompt (${promptLen}) + generated (${genLen}) tokens do not fit in the context (${nCtx}); use --context`);
}

async function opTokenize(req) {
    if (typeof req.text !== "string") throw new Error("text must be a string");
    return { ids: Array.from(model.tokenize(req.text, req.special === true)) };
}

async function opDetokenize(req) {
    return { text: model.detokenize(checkIds(req.ids), req.special === true) };
}

async function opNext(req) {
    const ids = checkIds(req.ids);
    if (ids.length === 0) throw new Error("next needs at least one prompt token");
    const k = req.top == null ? 10 : checkCount(req.top, "top");
    fits(ids.length, 0);
    await fresh();
    let pairs; // [id, logprob]
    if (req.via === "probabilities") {
        const it = sequence.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0, yieldEogToken: true });
        const first = await it.next();
        await it.return();
        if (first.done || first.value.probabilities == null) throw new Error("no probabilities came back");
        pairs = [...first.value.probabilities].map(([id, p]) => [id, Math.log(p)]);
    } else if (req.via == null || req.via === "logits") {
        const input = ids.map((t, i) => (i === ids.length - 1 ? [t, { generateNext: { logits: true } }] : t));
        const out = await sequence.controlledEvaluate(input);
        const logits = out[ids.length - 1]?.next?.logits;
        if (logits == null) throw new Error("no logits came back");
        let max = -Infinity;
        for (const v of logits.values()) if (v > max) max = v;
        let sum = 0;
        for (const v of logits.values()) sum += Math.exp(v - max);
        const lse = max + Math.log(sum);
        pairs = [...logits].map(([id, v]) => [id, v - lse]);
    } else throw new Error(`unknown via: ${req.via}`);
    pairs.sort(byValueThenId);
    return { top: pairs.slice(0, k).map(([id, lp]) => [id, Number.isFinite(lp) ? lp : null]) };
}

async function opGreedy(req) {
    const ids = checkIds(req.ids);
    if (ids.length === 0) throw new Error("greedy needs at least one prompt token");
    const n = checkCount(req.n, "n");
    fits(ids.length, n);
    await fresh();
    const out = [];
    if (n === 0) return { ids: out };
    const it = sequence.evaluate(ids, { temperature: 0, yieldEogToken: true });
    try {
        for (;;) {
            const r = await it.next();
            if (r.done) break; // should not happen with yieldEogToken; output what we have
            out.push(r.value);
            if (out.length >= n) break;
        }
    } finally {
        await it.return();
    }
    return { ids: out };
}

function benchPrompt(req, p) {
    let base;
    if (req.ids != null && req.ids.length > 0) base = checkIds(req.ids);
    else {
        const filler = "The quick brown fox jumps over the lazy dog. Hello world, this is a llama benchmark prompt " +
            "with some numbers 12345 and punctuation; it only has to be long enough to repeat. ";
        base = Array.from(model.tokenize(filler, false));
        if (base.length === 0) throw new Error("the filler text tokenized to nothing");
    }
    const ids = [];
    while (ids.length < p) ids.push(...base.slice(0, p - ids.length));
    return ids;
}

async function benchOnce(prompt, g) {
    await fresh();
    const it = sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true });
    try {
        const t0 = performance.now();
        const first = await it.next(); // prompt decode (one batch) + first sample
        const t1 = performance.now();
        if (first.done) throw new Error("generation ended before the first token");
        let made = 0;
        while (made < g) {
            const r = await it.next(); // decodes the previous token, samples the next
            if (r.done) break;
            made++;
        }
        const t2 = performance.now();
        return { promptMs: t1 - t0, genMs: t2 - t1, made };
    } finally {
        await it.return();
    }
}

async function opBench(req) {
    const p = checkCount(req.prompt_tokens, "prompt_tokens");
    const g = checkCount(req.gen_tokens ?? 0, "gen_tokens");
    if (p === 0) throw new Error("prompt_tokens must be at least 1");
    if (p > context.batchSize) throw new Error(`prompt_tokens ${p} exceeds the batch size ${context.batchSize}; use --batch`);
    fits(p, g + 1);
    const prompt = benchPrompt(req, p);
    if (req.warmup !== false) await benchOnce(prompt, Math.min(g, 1));
    const r = await benchOnce(prompt, g);
    await fresh();
    return {
        prompt_tps: (p * 1000) / r.promptMs,
        gen_tps: r.made > 0 ? (r.made * 1000) / r.genMs : null,
        rss_mb: peakRssMiB(),
        prompt_ms: r.promptMs,
        gen_ms: r.genMs,
        threads: opts.threads,
    };
}

async function opInfo() {
    const t = model.tokens;
    return {
        file: opts.model,
        architecture: model.fileInfo?.metadata?.general?.architecture ?? null,
        description: model.typeDescription,
        n_ctx_train: model.trainContextSize,
        n_embd: model.embeddingVectorSize,
        vocabulary_type: model.vocabularyType,
        bos: t.bos, eos: t.eos, eot: t.eot,
        add_bos: t.shouldPrependBosToken, add_eos: t.shouldAppendEosToken,
        context: nCtx, batch: context.batchSize, threads: opts.threads,
        kv_type: opts.kvType, flash_attn: opts.flashAttn,
        llama_cpp: llama.llamaCppRelease,
        build: llama.buildType,
        system_info: llama.systemInfo,
    };
}

const ops = { tokenize: opTokenize, detokenize: opDetokenize, next: opNext, greedy: opGreedy, bench: opBench, info: opInfo };

let failed = 0;
try {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of lines) {
        if (line.trim() === "") continue;
        let answer;
        try {
            const req = JSON.parse(line);
            const op = ops[req?.op];
            if (op == null) throw new Error(`unknown op: ${req?.op}`);
            answer = await op(req);
        } catch (e) {
            failed++;
            answer = { error: String(e?.message ?? e) };
        }
        process.stdout.write(JSON.stringify(answer) + "\n");
    }
} finally {
    await sequence.dispose?.();
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}
if (failed > 0) process.stderr.write(`llama.mjs: ${failed} request(s) failed\n`);
process.exitCode = failed > 0 ? 1 : 0;
