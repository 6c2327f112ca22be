//===- TokenData.cpp - tokenizers and token-id datasets ---------------------===//

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Support/CheckedMath.h"
#include "quant-mlir/Support/InputFiles.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <dlfcn.h>

#include <cstring>
#include <map>
#include <random>

using namespace quant_mlir::data;
using llvm::StringRef;

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

Tokenizer::~Tokenizer() = default;

// ASan refuses RTLD_DEEPBIND (its interceptors must come first in every
// lookup), so sanitizer builds load the shim with ordinary binding; there
// sentencepiece and the importer's libprotobuf must not meet in one process
// (lit marks the one test that combines them UNSUPPORTED under asan).
#if defined(__SANITIZE_ADDRESS__)
#define QUANT_MLIR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUANT_MLIR_ASAN 1
#endif
#endif
#ifdef QUANT_MLIR_ASAN
static constexpr int kDeepBind = 0;
#else
static constexpr int kDeepBind = RTLD_DEEPBIND;
#endif

namespace {
/// libsentencepiece behind the C interface of SentencePieceShim.cpp, loaded
/// with deep binding (see there why it cannot be linked directly).
struct SentencePieceLib {
  void *(*load)(const char *, size_t, char **) = nullptr;
  void (*release)(void *) = nullptr;
  void (*freeBuffer)(void *) = nullptr;
  int (*encode)(void *, const char *, size_t, int32_t **, size_t *,
                char **) = nullptr;
  int (*decode)(void *, const int32_t *, size_t, char **, char **) = nullptr;
  int32_t (*info)(void *, int) = nullptr;
  std::string error;

  static const SentencePieceLib &get() {
    static const SentencePieceLib lib = [] {
      SentencePieceLib l;
      void *h = nullptr;
      std::string why;
      for (const char *path :
           {QUANT_MLIR_SPM_SHIM, "libQuantMLIRSentencePiece.so"}) {
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL | kDeepBind);
        if (h)
          break;
        why = dlerror();
      }
      if (!h) {
        l.error = "cannot load the sentencepiece interface: " + why;
        return l;
      }
      auto sym = [&](auto &fn, const char *name) {
        fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
            dlsym(h, name));
        if (!fn && l.error.empty())
          l.error = std::string("sentencepiece interface lacks ") + name;
      };
      sym(l.load, "qm_spm_load");
      sym(l.release, "qm_spm_free");
      sym(l.freeBuffer, "qm_spm_free_buffer");
      sym(l.encode, "qm_spm_encode");
      sym(l.decode, "qm_spm_decode");
      sym(l.info, "qm_spm_info");
      return l;
    }();
    return lib;
  }
  /// Takes ownership of a malloc'ed message from the shim.
  std::string take(char *msg) const {
    std::string s = msg ? msg : "unknown error";
    if (msg)
      freeBuffer(msg);
    return s;
  }
};

class SentencePieceTokenizer : public Tokenizer {
public:
  const SentencePieceLib &lib;
  void *handle;
  SentencePieceTokenizer(const SentencePieceLib &lib, void *handle)
      : lib(lib), handle(handle) {}
  ~SentencePieceTokenizer() override { lib.release(handle); }

  llvm::Expected<std::vector<int64_t>> encode(StringRef text,
                                              bool addBos) const override {
    int32_t *ids = nullptr;
    size_t count = 0;
    char *err = nullptr;
    if (lib.encode(handle, text.data(), text.size(), &ids, &count, &err) != 0)
      return fail("sentencepiece: " + lib.take(err));
    std::vector<int64_t> out;
    if (addBos && bosId() >= 0)
      out.push_back(bosId());
    out.insert(out.end(), ids, ids + count);
    lib.freeBuffer(ids);
    return out;
  }
  llvm::Expected<std::string>
  decode(llvm::ArrayRef<int64_t> ids) const override {
    std::vector<int32_t> in;
    for (int64_t id : ids) {
      if (id < 0 || id >= vocabSize())
        return fail("token id " + llvm::Twine(id) + " is outside the " +
                    llvm::Twine(vocabSize()) + "-token vocabulary");
      in.push_back(int32_t(id));
    }
    char *text = nullptr, *err = nullptr;
    if (lib.decode(handle, in.data(), in.size(), &text, &err) != 0)
      return fail("sentencepiece: " + lib.take(err));
    std::string out = text;
    lib.freeBuffer(text);
    return out;
  }
  int64_t vocabSize() const override { return lib.info(handle, 0); }
  int64_t bosId() const override { return lib.info(handle, 1); }
  int64_t eosId() const override { return lib.info(handle, 2); }
};

/// llama2.c's tokenizer.bin: int32 max_token_length, then per token a float
/// score, an int32 length and the bytes. Encoding follows run.c: a leading
/// space, bytes to pieces (byte fallback <0xXX> at id byte+3), then greedy
/// merges of the adjacent pair with the highest score.
class Llama2cTokenizer : public Tokenizer {
public:
  std::vector<std::string> vocab;
  std::vector<float> scores;
  std::map<std::string, int64_t> index;

  int64_t lookup(const std::string &piece) const {
    auto it = index.find(piece);
    return it == index.end() ? -1 : it->second;
  }
  llvm::Expected<std::vector<int64_t>> encode(StringRef text,
                                              bool addBos) const override {
    std::vector<int64_t> ids;
    if (!text.empty()) {
      if (int64_t space = lookup(" "); space >= 0)
        ids.push_back(space);
    }
    // UTF-8 code points become pieces; unknown ones fall back to bytes.
    for (size_t i = 0; i < text.size();) {
      size_t len = 1;
      while (i + len < text.size() && (text[i + len] & 0xC0) == 0x80 && len < 4)
        ++len;
      int64_t id = lookup(text.substr(i, len).str());
      if (id >= 0) {
        ids.push_back(id);
      } else {
        for (size_t b = 0; b < len; ++b)
          ids.push_back(static_cast<unsigned char>(text[i + b]) + 3);
      }
      i += len;
    }
    while (true) {
      float best = -1e10f;
      int64_t bestId = -1, bestAt = -1;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        int64_t id = lookup(vocab[ids[i]] + vocab[ids[i + 1]]);
        if (id >= 0 && scores[id] > best) {
          best = scores[id];
          bestId = id;
          bestAt = i;
        }
      }
      if (bestAt < 0)
        break;
      ids[bestAt] = bestId;
      ids.erase(ids.begin() + bestAt + 1);
    }
    if (addBos)
      ids.insert(ids.begin(), 1);
    return ids;
  }
  /// run.c's decode: pieces concatenated, <0xXX> pieces as raw bytes, the
  /// leading space of the first piece after BOS dropped.
  llvm::Expected<std::string>
  decode(llvm::ArrayRef<int64_t> ids) const override {
    std::string out;
    for (auto [i, id] : llvm::enumerate(ids)) {
      if (id < 0 || id >= vocabSize())
        return fail("token id " + llvm::Twine(id) + " is outside the " +
                    llvm::Twine(vocabSize()) + "-token vocabulary");
      if (id == bosId() || id == eosId())
        continue;
      StringRef piece = vocab[id];
      unsigned byte;
      if (piece.size() == 6 && piece.starts_with("<0x") &&
          piece.ends_with(">") && !piece.substr(3, 2).getAsInteger(16, byte)) {
        out.push_back(char(byte));
        continue;
      }
      if ((i == 0 || ids[i - 1] == bosId()) && piece.starts_with(" "))
        piece = piece.drop_front();
      out += piece.str();
    }
    return out;
  }
  int64_t vocabSize() const override { return vocab.size(); }
  int64_t bosId() const override { return 1; }
  int64_t eosId() const override { return 2; }
};

llvm::Expected<std::unique_ptr<Tokenizer>>
openLlama2c(StringRef path, llvm::MemoryBuffer &buf, int64_t vocabSize) {
  auto tok = std::make_unique<Llama2cTokenizer>();
  StringRef data = buf.getBuffer();
  size_t pos = 4;
  auto read = [&](void *dst, size_t n) {
    if (pos + n > data.size())
      return false;
    std::memcpy(dst, data.data() + pos, n);
    pos += n;
    return true;
  };
  while (pos < data.size() && (vocabSize < 0 || int64_t(tok->vocab.size()) < vocabSize)) {
    float score;
    int32_t len;
    if (!read(&score, 4) || !read(&len, 4) || len < 0 ||
        pos + size_t(len) > data.size())
      return fail("'" + path + "': truncated llama2.c tokenizer at token " +
                  llvm::Twine(tok->vocab.size()));
    std::string piece(data.data() + pos, len);
    pos += len;
    tok->index.emplace(piece, tok->vocab.size());
    tok->vocab.push_back(std::move(piece));
    tok->scores.push_back(score);
  }
  if (tok->vocab.size() < 259)
    return fail("'" + path + "': a llama2.c tokenizer needs at least 259 "
                "tokens (3 special + 256 bytes), found " +
                llvm::Twine(tok->vocab.size()));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}
} // namespace

llvm::Expected<std::unique_ptr<Tokenizer>> Tokenizer::open(StringRef path) {
  auto buf = quant_mlir::getRegularFile(path);
  if (!buf)
    return fail("cannot read tokenizer '" + path + "': " +
                buf.getError().message());
  StringRef bytes = (*buf)->getBuffer();
  const SentencePieceLib &lib = SentencePieceLib::get();
  if (!lib.error.empty())
    return fail(lib.error);
  char *err = nullptr;
  if (void *h = lib.load(bytes.data(), bytes.size(), &err))
    return std::unique_ptr<Tokenizer>(
        std::make_unique<SentencePieceTokenizer>(lib, h));
  if (err)
    lib.freeBuffer(err);
  if (bytes.size() >= 8)
    return openLlama2c(path, **buf, -1);
  return fail("'" + path + "' is neither a sentencepiece model nor a "
              "llama2.c tokenizer");
}

namespace {
llvm::Expected<std::vector<int64_t>> parseIntList(StringRef text,
                                                  StringRef path) {
  std::vector<int64_t> out;
  llvm::SmallVector<StringRef> words;
  text.split(words, ' ', -1, false);
  for (StringRef w : words) {
    w = w.trim();
    if (w.empty())
      continue;
    int64_t v;
    if (w.getAsInteger(10, v))
      return fail("'" + path + "': '" + w + "' is not a token id");
    out.push_back(v);
  }
  return out;
}

bool allIntegers(StringRef text) {
  for (char c : text)
    if (!llvm::isDigit(c) && !llvm::isSpace(c) && c != '-')
      return false;
  return true;
}

/// numpy's .npy v1/v2/v3: magic, version, header length, a Python dict.
llvm::Expected<std::vector<int64_t>> loadNpy(StringRef path, StringRef data) {
  if (data.size() < 10 || !data.starts_with("\x93NUMPY"))
    return fail("'" + path + "' is not a .npy file (bad magic)");
  unsigned major = static_cast<unsigned char>(data[6]);
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = uint8_t(data[8]) | (uint8_t(data[9]) << 8);
    offset = 10;
  } else {
    if (data.size() < 12)
      return fail("'" + path + "': truncated .npy header");
    headerLen = uint32_t(uint8_t(data[8])) | (uint32_t(uint8_t(data[9])) << 8) |
                (uint32_t(uint8_t(data[10])) << 16) |
                (uint32_t(uint8_t(data[11])) << 24);
    offset = 12;
  }
  if (offset + headerLen > data.size())
    return fail("'" + path + "': .npy header runs past the end of the file");
  StringRef header = data.substr(offset, headerLen);
  auto field = [&](StringRef key) -> StringRef {
    size_t at = header.find(("'" + key + "'").str());
    if (at == StringRef::npos)
      return {};
    StringRef rest = header.substr(at + key.size() + 2).ltrim(" :");
    return rest;
  };
  StringRef descr = field("descr");
  if (descr.empty() || descr[0] != '\'')
    return fail("'" + path + "': .npy header has no descr");
  descr = descr.drop_front().take_until([](char c) { return c == '\''; });
  if (field("fortran_order").starts_with("True"))
    return fail("'" + path + "': Fortran-ordered .npy arrays are not supported");
  StringRef shapeText = field("shape");
  shapeText = shapeText.drop_front().take_until([](char c) { return c == ')'; });
  llvm::SmallVector<StringRef> dimTexts;
  llvm::SmallVector<int64_t> dims;
  shapeText.split(dimTexts, ',', -1, false);
  for (StringRef d : dimTexts) {
    int64_t v;
    if (d.trim().empty())
      continue;
    if (d.trim().getAsInteger(10, v) || v < 0)
      return fail("'" + path + "': bad .npy shape '" + shapeText + "'");
    dims.push_back(v);
  }
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '|' && descr[0] != '='))
    return fail("'" + path + "': unsupported .npy dtype '" + descr +
                "' (little-endian integers only)");
  char kind = descr[1];
  unsigned width;
  if ((kind != 'i' && kind != 'u') || descr.substr(2).getAsInteger(10, width) ||
      (width != 1 && width != 2 && width != 4 && width != 8))
    return fail("'" + path + "': unsupported .npy dtype '" + descr +
                "' (token ids must be integers)");
  auto bytes = quant_mlir::checkedByteSize(dims, width, "'" + path + "'");
  if (!bytes)
    return bytes.takeError();
  int64_t count = int64_t(*bytes / width);
  size_t begin = offset + headerLen;
  if (*bytes != data.size() - begin)
    return fail("'" + path + "': .npy data holds " +
                llvm::Twine(data.size() - begin) + " bytes, expected " +
                llvm::Twine(*bytes));
  std::vector<int64_t> out(count);
  for (int64_t i = 0; i < count; ++i) {
    const char *p = data.data() + begin + i * width;
    uint64_t raw = 0;
    std::memcpy(&raw, p, width);
    if (kind == 'i' && width < 8 && (raw >> (width * 8 - 1)) & 1)
      raw |= ~uint64_t(0) << (width * 8);
    out[i] = static_cast<int64_t>(raw);
  }
  return out;
}
} // namespace

llvm::Expected<std::vector<int64_t>>
quant_mlir::data::loadTokens(StringRef path, const Tokenizer *tokenizer) {
  auto buf = quant_mlir::getRegularFile(path);
  if (!buf)
    return fail("cannot read '" + path + "': " + buf.getError().message());
  StringRef data = (*buf)->getBuffer();
  std::vector<int64_t> tokens;
  StringRef ext = llvm::sys::path::extension(path);
  if (ext == ".npy") {
    auto ids = loadNpy(path, data);
    if (!ids)
      return ids.takeError();
    tokens = std::move(*ids);
  } else if (ext == ".jsonl") {
    llvm::SmallVector<StringRef> lines;
    data.split(lines, '\n');
    for (auto [lineNo, line] : llvm::enumerate(lines)) {
      if (line.trim().empty())
        continue;
      auto where = [&, lineNo = lineNo] {
        return "'" + path.str() + "' line " + std::to_string(lineNo + 1);
      };
      if (llvm::Error err = quant_mlir::checkJSONNesting(line))
        return fail(where() + ": " + llvm::toString(std::move(err)));
      auto value = llvm::json::parse(line);
      if (!value)
        return fail(where() + ": " + llvm::toString(value.takeError()));
      const llvm::json::Array *ids = value->getAsArray();
      if (auto *obj = value->getAsObject()) {
        ids = obj->getArray("input_ids");
        if (!ids) {
          std::optional<StringRef> text = obj->getString("text");
          if (!text)
            return fail(where() + ": expected an \"input_ids\" array or a "
                                  "\"text\" string");
          if (!tokenizer)
            return fail(where() + ": text needs a tokenizer (--tokenizer)");
          auto enc = tokenizer->encode(*text, /*addBos=*/true);
          if (!enc)
            return enc.takeError();
          tokens.insert(tokens.end(), enc->begin(), enc->end());
          continue;
        }
      }
      if (!ids)
        return fail(where() + ": expected an array of token ids or an object");
      for (const llvm::json::Value &v : *ids) {
        std::optional<int64_t> id = v.getAsInteger();
        if (!id)
          return fail(where() + ": token ids must be integers");
        tokens.push_back(*id);
      }
    }
  } else if (allIntegers(data)) {
    std::string flat = data.str();
    for (char &c : flat)
      if (llvm::isSpace(c))
        c = ' ';
    auto ids = parseIntList(flat, path);
    if (!ids)
      return ids.takeError();
    tokens = std::move(*ids);
  } else {
    if (!tokenizer)
      return fail("'" + path + "' holds text, which needs a tokenizer "
                  "(--tokenizer), or token ids separated by whitespace");
    auto enc = tokenizer->encode(data, /*addBos=*/true);
    if (!enc)
      return enc.takeError();
    tokens = std::move(*enc);
  }
  if (tokens.empty())
    return fail("'" + path + "' holds no tokens");
  return tokens;
}

llvm::Error quant_mlir::data::checkVocabulary(llvm::ArrayRef<int64_t> tokens,
                                              int64_t vocab, StringRef path) {
  for (auto [i, t] : llvm::enumerate(tokens))
    if (t < 0 || t >= vocab)
      return fail("'" + path + "': token #" + llvm::Twine(i) + " is " +
                  llvm::Twine(t) + ", outside the model's vocabulary [0, " +
                  llvm::Twine(vocab) + ")");
  return llvm::Error::success();
}

llvm::Expected<std::vector<int64_t>>
quant_mlir::data::sampleWindows(int64_t numTokens, int64_t seqLen,
                                int64_t count, uint64_t seed, StringRef path) {
  if (seqLen <= 0 || count <= 0)
    return fail("sample length and count must be positive");
  if (numTokens < seqLen)
    return fail("'" + path + "' holds " + llvm::Twine(numTokens) +
                " tokens, fewer than one sample of " + llvm::Twine(seqLen));
  // Limits before allocating: more samples than distinct windows only
  // repeats windows, and the samples' token ids are held in memory at once
  // (true-sequential calibration keeps every window's activations too).
  int64_t distinct = numTokens - seqLen + 1;
  if (count > distinct)
    return fail(llvm::Twine(count) + " samples of " + llvm::Twine(seqLen) +
                " tokens asked for, but '" + path + "' holds only " +
                llvm::Twine(distinct) + " distinct windows (" +
                llvm::Twine(numTokens) + " tokens)");
  std::optional<int64_t> total = quant_mlir::checkedMul(count, seqLen);
  if (!total || *total > kMaxSampledTokens)
    return fail(llvm::Twine(count) + " samples of " + llvm::Twine(seqLen) +
                " tokens exceed the limit of " +
                llvm::Twine(kMaxSampledTokens) + " calibration tokens");
  std::mt19937_64 rng(seed);
  std::vector<int64_t> starts(count);
  // Modulo keeps the draw platform-independent (std distributions are not).
  uint64_t range = uint64_t(numTokens - seqLen) + 1;
  for (int64_t &s : starts)
    s = static_cast<int64_t>(rng() % range);
  return starts;
}
