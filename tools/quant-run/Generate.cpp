//===- Generate.cpp - quant-run's generation and choice-scoring modes -----===//
// Parses the generation flags, streams decoded tokens to stdout, and reports
// timings, peak memory and repetition (text or --json); --choices scores
// multiple-choice items like lm-evaluation-harness (acc, acc_norm).
//===----------------------------------------------------------------------===//

#include "Generate.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Runtime/Generate.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <numeric>

using namespace quant_mlir;
namespace cl = llvm::cl;
using llvm::Twine;

llvm::cl::OptionCategory quant_run::generationCategory(
    "quant-run generation options");
static auto &cat = quant_run::generationCategory;

static cl::opt<std::string> prompt("prompt",
                                   cl::desc("Generate from this text (BOS prepended; needs --tokenizer)"),
                                   cl::cat(cat));
static cl::opt<std::string> promptIds("prompt-ids",
                                      cl::desc("Generate from these comma- or space-separated token ids"),
                                      cl::cat(cat));
static cl::opt<std::string> promptsFile("prompts",
                                        cl::desc("Generate for each line of a .jsonl file: {\"prompt\": TEXT} or {\"prompt_ids\": [...]}"),
                                        cl::cat(cat));
static cl::opt<std::string> choicesFile("choices",
                                        cl::desc("Score multiple-choice lines {\"context\", \"choices\": [...], \"answer\"} (acc, acc_norm)"),
                                        cl::cat(cat));
static cl::opt<int64_t> maxNewTokens("max-new-tokens", cl::init(64),
                                     cl::desc("Tokens to generate at most"),
                                     cl::cat(cat));
static cl::opt<double> temperature("temperature", cl::init(0.0),
                                   cl::desc("Sampling temperature (0: greedy)"),
                                   cl::cat(cat));
static cl::opt<double> topP("top-p", cl::init(1.0),
                            cl::desc("Nucleus sampling mass (1: off)"),
                            cl::cat(cat));
static cl::opt<int64_t> topK("top-k", cl::init(0),
                             cl::desc("Sample among the k most likely tokens (0: all)"),
                             cl::cat(cat));
static cl::opt<int64_t> maxSeqLen("max-seq-len", cl::init(512),
                                  cl::desc("Context limit: prompt + generated tokens (the KV cache's size)"),
                                  cl::cat(cat));
static cl::opt<CacheMode> kvCache(
    "kv-cache", cl::init(CacheMode::Auto),
    cl::desc("How the context is kept between tokens"),
    cl::values(clEnumValN(CacheMode::Auto, "auto",
                          "the graph's past_key_values if it has them, else derived"),
               clEnumValN(CacheMode::Recompute, "recompute",
                          "full-sequence graph on the whole context each token"),
               clEnumValN(CacheMode::Past, "past",
                          "the graph's past_key_values / present outputs"),
               clEnumValN(CacheMode::Derived, "derived",
                          "decode step from wq-derive-kv-cache, preallocated cache")),
    cl::cat(cat));
static cl::opt<bool> verifyCache(
    "verify-cache",
    cl::desc("First feed each prompt token by token through the cache and "
             "print the max logit difference to the full-sequence graph"),
    cl::cat(cat));

static cl::opt<bool> noBos("no-bos",
                           cl::desc("Do not prepend BOS to text prompts"),
                           cl::cat(cat));
static cl::opt<bool> ignoreEos("ignore-eos",
                               cl::desc("Do not stop at the tokenizer's EOS"),
                               cl::cat(cat));

bool quant_run::generationRequested() {
  return !prompt.empty() || !promptIds.empty() || !promptsFile.empty() ||
         !choicesFile.empty();
}

static int fail(const Twine &msg) {
  llvm::errs() << "quant-run: error: " << msg << "\n";
  return 1;
}

static double peakRSSMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0; // Linux reports KiB.
}

static llvm::Expected<std::vector<int64_t>> parseIds(llvm::StringRef text) {
  std::vector<int64_t> ids;
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, ',', -1, false);
  for (llvm::StringRef part : parts) {
    llvm::SmallVector<llvm::StringRef> words;
    part.split(words, ' ', -1, false);
    for (llvm::StringRef w : words) {
      int64_t v;
      if (w.trim().getAsInteger(10, v))
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "'" + w + "' in --prompt-ids is not an integer");
      ids.push_back(v);
    }
  }
  return ids;
}

namespace {
struct PromptItem {
  std::string text; // empty for id prompts
  std::vector<int64_t> ids;
};
} // namespace

static llvm::Expected<std::vector<int64_t>>
encodeText(const data::Tokenizer *tokenizer, llvm::StringRef text,
           llvm::StringRef what) {
  if (!tokenizer)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   what + " is text, which needs a tokenizer (--tokenizer)");
  return tokenizer->encode(text, !noBos);
}

/// Reads a .jsonl file into parsed objects, naming the line on errors.
static llvm::Expected<std::vector<llvm::json::Object>>
readJsonl(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return llvm::createStringError(buffer.getError(),
                                   "cannot read '" + path + "'");
  std::vector<llvm::json::Object> out;
  llvm::SmallVector<llvm::StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n');
  for (auto [i, line] : llvm::enumerate(lines)) {
    if (line.trim().empty())
      continue;
    auto value = llvm::json::parse(line);
    if (!value)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "'" + path + "' line " + Twine(i + 1) +
                                         ": " + llvm::toString(value.takeError()));
    if (!value->getAsObject())
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "'" + path + "' line " + Twine(i + 1) +
                                         " is not a JSON object");
    out.push_back(std::move(*value->getAsObject()));
  }
  if (out.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'" + path + "' holds no lines");
  return out;
}

static llvm::Expected<std::vector<PromptItem>>
collectPrompts(const data::Tokenizer *tokenizer) {
  std::vector<PromptItem> items;
  if (!prompt.empty()) {
    auto ids = encodeText(tokenizer, prompt, "--prompt");
    if (!ids)
      return ids.takeError();
    items.push_back({prompt, std::move(*ids)});
  }
  if (!promptIds.empty()) {
    auto ids = parseIds(promptIds);
    if (!ids)
      return ids.takeError();
    items.push_back({"", std::move(*ids)});
  }
  if (!promptsFile.empty()) {
    auto lines = readJsonl(promptsFile);
    if (!lines)
      return lines.takeError();
    for (auto [i, obj] : llvm::enumerate(*lines)) {
      std::string where =
          ("'" + promptsFile + "' line " + Twine(i + 1)).str();
      if (auto text = obj.getString("prompt")) {
        auto ids = encodeText(tokenizer, *text, where);
        if (!ids)
          return ids.takeError();
        items.push_back({text->str(), std::move(*ids)});
      } else if (const llvm::json::Array *arr = obj.getArray("prompt_ids")) {
        PromptItem item;
        for (const llvm::json::Value &v : *arr) {
          auto id = v.getAsInteger();
          if (!id)
            return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                           where + ": prompt_ids holds a non-integer");
          item.ids.push_back(*id);
        }
        items.push_back(std::move(item));
      } else {
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       where + " has neither \"prompt\" nor \"prompt_ids\"");
      }
    }
  }
  return items;
}

static llvm::Expected<std::unique_ptr<Decoder>>
openModel(mlir::MLIRContext &context, const std::string &modelDir,
          const std::string &func, const CPUCompileOptions &compile) {
  llvm::SmallString<256> mlirPath(modelDir);
  llvm::sys::path::append(mlirPath, "model.mlir");
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  auto module =
      mlir::parseSourceFile<mlir::ModuleOp>(mlirPath, sourceMgr, &context);
  if (!module)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot load '" + mlirPath + "'");
  DecoderOptions options;
  options.func = func;
  options.mode = kvCache;
  options.maxSeqLen = maxSeqLen;
  options.fullGraph = verifyCache || !choicesFile.empty();
  options.compile = compile;
  return Decoder::open(std::move(module), modelDir, options);
}

/// Decoded text of `ids` after `prompt`: the decode of prompt + ids minus
/// that of the prompt, so word-initial spaces survive (sentencepiece drops
/// a leading space when a piece is decoded alone).
static std::string continuationText(const data::Tokenizer &tokenizer,
                                    llvm::ArrayRef<int64_t> prompt,
                                    llvm::ArrayRef<int64_t> ids) {
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), ids.begin(), ids.end());
  auto head = tokenizer.decode(prompt), whole = tokenizer.decode(all);
  if (head && whole && llvm::StringRef(*whole).starts_with(*head))
    return whole->substr(head->size());
  llvm::consumeError(head.takeError());
  llvm::consumeError(whole.takeError());
  auto alone = tokenizer.decode(ids);
  if (!alone) {
    llvm::consumeError(alone.takeError());
    return "";
  }
  return *alone;
}

namespace {
/// Prints each new token's text as soon as it is chosen.
class Streamer {
public:
  Streamer(const data::Tokenizer *tokenizer, llvm::ArrayRef<int64_t> prompt,
           bool enabled)
      : tokenizer(tokenizer), prompt(prompt), enabled(enabled) {}
  void push(int64_t id) {
    ids.push_back(id);
    if (!enabled)
      return;
    if (!tokenizer) {
      llvm::outs() << " " << id;
    } else {
      std::string text = continuationText(*tokenizer, prompt, ids);
      if (text.size() > printed)
        llvm::outs() << llvm::StringRef(text).drop_front(printed);
      printed = std::max(printed, text.size());
    }
    llvm::outs().flush();
  }

private:
  const data::Tokenizer *tokenizer;
  llvm::ArrayRef<int64_t> prompt;
  bool enabled;
  std::vector<int64_t> ids;
  size_t printed = 0;
};
} // namespace

static llvm::json::Array idArray(llvm::ArrayRef<int64_t> ids) {
  llvm::json::Array a;
  for (int64_t v : ids)
    a.push_back(v);
  return a;
}

static int runPrompts(Decoder &decoder, const data::Tokenizer *tokenizer,
                      llvm::ArrayRef<PromptItem> items, uint64_t seed,
                      bool json, double compileSeconds) {
  GenerateOptions options;
  options.maxNewTokens = maxNewTokens;
  options.eosId = tokenizer && !ignoreEos ? tokenizer->eosId() : -1;
  options.sampling = {temperature, topP, topK, seed};
  if (verifyCache) {
    for (const PromptItem &item : items) {
      auto diff = compareWithRecompute(decoder, item.ids);
      if (!diff)
        return fail(llvm::toString(diff.takeError()));
      llvm::outs() << "cache " << decoder.modeName() << ": "
                   << item.ids.size() << " positions, max |logit diff| "
                   << llvm::format("%.3e", *diff) << "\n";
    }
  }
  llvm::json::Array results;
  for (const PromptItem &item : items) {
    if (!json) {
      if (!item.text.empty())
        llvm::outs() << item.text;
      else
        for (auto [i, id] : llvm::enumerate(item.ids))
          llvm::outs() << (i ? " " : "") << id;
    }
    Streamer streamer(tokenizer, item.ids, !json);
    auto result = generate(decoder, item.ids, options,
                           [&](int64_t id) { streamer.push(id); });
    if (!result)
      return fail(llvm::toString(result.takeError()));
    double decodeSeconds = std::accumulate(result->tokenSeconds.begin(),
                                           result->tokenSeconds.end(), 0.0);
    double tokPerSec =
        decodeSeconds > 0 ? result->tokenSeconds.size() / decodeSeconds : 0;
    double p50 = quantile(result->tokenSeconds, 0.5) * 1e3;
    double p90 = quantile(result->tokenSeconds, 0.9) * 1e3;
    double rep = repetitionRate(result->ids, 4);
    const char *stop = result->stoppedAtEos      ? "eos"
                       : result->stoppedAtMaxLen ? "max_seq_len"
                                                 : "max_new_tokens";
    if (json) {
      llvm::json::Object r{{"prompt_ids", idArray(item.ids)},
                           {"ids", idArray(result->ids)},
                           {"new_tokens", int64_t(result->ids.size())},
                           {"stop", stop},
                           {"time_to_first_token_s", result->timeToFirstToken},
                           {"decode_tokens_per_second", tokPerSec},
                           {"latency_p50_ms", p50},
                           {"latency_p90_ms", p90},
                           {"decode_cpu_ms_per_token",
                            result->tokenSeconds.empty()
                                ? 0.0
                                : result->decodeCpuSeconds * 1e3 /
                                      result->tokenSeconds.size()},
                           {"repetition_rate_4gram", rep}};
      if (tokenizer)
        r["text"] = continuationText(*tokenizer, item.ids, result->ids);
      if (!item.text.empty())
        r["prompt"] = item.text;
      results.push_back(std::move(r));
    } else {
      llvm::outs() << "\n";
      llvm::outs().flush();
      llvm::errs() << llvm::format(
          "[%zu tokens, stop: %s, first token %.1f ms, decode %.1f tok/s, "
          "p50 %.2f ms, p90 %.2f ms, 4-gram repetition %.3f, cache %s]\n",
          result->ids.size(), stop, result->timeToFirstToken * 1e3, tokPerSec,
          p50, p90, rep, decoder.modeName().str().c_str());
    }
  }
  if (json) {
    llvm::json::Object out{{"kv_cache", decoder.modeName()},
                           {"max_seq_len", decoder.maxSeqLen()},
                           {"temperature", temperature.getValue()},
                           {"top_p", topP.getValue()},
                           {"top_k", topK.getValue()},
                           {"seed", int64_t(seed)},
                           {"compile_seconds", compileSeconds},
                           {"peak_rss_mib", peakRSSMiB()},
                           {"results", std::move(results)}};
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(out)))
                 << "\n";
  }
  return 0;
}

/// lm-evaluation-harness's multiple choice: each choice is the continuation
/// " " + choice of the context (trailing spaces of the context move into
/// the continuation), tokenized as whole[len(encode(context)):]; acc takes
/// the argmax of the summed log-likelihood, acc_norm of it divided by the
/// choice's length in bytes.
static int runChoices(Decoder &decoder, const data::Tokenizer *tokenizer,
                      bool json) {
  if (!tokenizer)
    return fail("--choices needs a tokenizer (--tokenizer)");
  auto lines = readJsonl(choicesFile);
  if (!lines)
    return fail(llvm::toString(lines.takeError()));
  int64_t correct = 0, correctNorm = 0;
  llvm::json::Array items;
  for (auto [i, obj] : llvm::enumerate(*lines)) {
    std::string where = ("'" + choicesFile + "' line " + Twine(i + 1)).str();
    auto context = obj.getString("context");
    const llvm::json::Array *choices = obj.getArray("choices");
    auto answer = obj.getInteger("answer");
    if (!context || !choices || choices->empty() || !answer)
      return fail(where + " needs \"context\" (string), \"choices\" "
                          "(non-empty array of strings) and \"answer\" (index)");
    if (*answer < 0 || *answer >= int64_t(choices->size()))
      return fail(where + ": answer " + Twine(*answer) + " is not a choice index");
    std::string ctx = context->str();
    size_t kept = llvm::StringRef(ctx).rtrim().size();
    std::string moved = ctx.substr(kept);
    ctx.resize(kept);
    auto ctxIds = tokenizer->encode(ctx, true);
    if (!ctxIds)
      return fail(where + ": " + llvm::toString(ctxIds.takeError()));
    llvm::json::Array lls;
    int64_t best = 0, bestNorm = 0;
    double bestLL = -INFINITY, bestNormLL = -INFINITY;
    for (auto [c, choiceValue] : llvm::enumerate(*choices)) {
      auto choice = choiceValue.getAsString();
      if (!choice || choice->empty())
        return fail(where + ": choice #" + Twine(c) + " is not a non-empty string");
      auto whole = tokenizer->encode(ctx + moved + " " + choice->str(), true);
      if (!whole)
        return fail(where + ": " + llvm::toString(whole.takeError()));
      if (whole->size() <= ctxIds->size())
        return fail(where + ": choice #" + Twine(c) + " adds no tokens");
      llvm::ArrayRef<int64_t> all(*whole);
      auto score = scoreContinuation(decoder, all.take_front(ctxIds->size()),
                                     all.drop_front(ctxIds->size()));
      if (!score)
        return fail(where + ": " + llvm::toString(score.takeError()));
      double norm = score->logLikelihood / double(choice->size());
      if (score->logLikelihood > bestLL) {
        bestLL = score->logLikelihood;
        best = c;
      }
      if (norm > bestNormLL) {
        bestNormLL = norm;
        bestNorm = c;
      }
      lls.push_back(score->logLikelihood);
    }
    correct += best == *answer;
    correctNorm += bestNorm == *answer;
    items.push_back(llvm::json::Object{{"loglikelihoods", std::move(lls)},
                                       {"pred", best},
                                       {"pred_norm", bestNorm},
                                       {"answer", *answer}});
  }
  double n = lines->size();
  if (json) {
    llvm::json::Object out{{"items", std::move(items)},
                           {"n", int64_t(lines->size())},
                           {"acc", correct / n},
                           {"acc_norm", correctNorm / n},
                           {"peak_rss_mib", peakRSSMiB()}};
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(out)))
                 << "\n";
  } else {
    llvm::outs() << llvm::format("%-10s %lld\n", "items", (long long)n)
                 << llvm::format("%-10s %.4f\n", "acc", correct / n)
                 << llvm::format("%-10s %.4f\n", "acc_norm", correctNorm / n);
  }
  return 0;
}

int quant_run::runGeneration(mlir::MLIRContext &context,
                             const std::string &modelDir,
                             const data::Tokenizer *tokenizer,
                             const std::string &func, uint64_t seed, bool json,
                             const CPUCompileOptions &compile) {
  if (!choicesFile.empty() &&
      (!prompt.empty() || !promptIds.empty() || !promptsFile.empty()))
    return fail("--choices cannot be combined with --prompt/--prompt-ids/--prompts");
  if (maxNewTokens < 1)
    return fail("--max-new-tokens must be at least 1");
  if (temperature < 0 || topP <= 0 || topP > 1 || topK < 0)
    return fail("need --temperature >= 0, 0 < --top-p <= 1, --top-k >= 0");
  // Prompts are read and checked before the (slow) compile.
  std::vector<PromptItem> items;
  if (choicesFile.empty()) {
    auto collected = collectPrompts(tokenizer);
    if (!collected)
      return fail(llvm::toString(collected.takeError()));
    items = std::move(*collected);
    for (const PromptItem &item : items) {
      if (item.ids.empty())
        return fail("a prompt holds no tokens");
      if (int64_t(item.ids.size()) > maxSeqLen)
        return fail("the prompt holds " + Twine(item.ids.size()) +
                    " tokens, more than --max-seq-len " + Twine(maxSeqLen));
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto decoder = openModel(context, modelDir, func, compile);
  if (!decoder)
    return fail(llvm::toString(decoder.takeError()));
  double compileSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (tokenizer && tokenizer->vocabSize() > (*decoder)->vocabSize())
    return fail("the tokenizer's vocabulary (" + Twine(tokenizer->vocabSize()) +
                ") is larger than the model's (" +
                Twine((*decoder)->vocabSize()) + ")");
  if (!choicesFile.empty())
    return runChoices(**decoder, tokenizer, json);
  return runPrompts(**decoder, tokenizer, items, seed, json, compileSeconds);
}
