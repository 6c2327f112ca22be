//===- SentencePieceShim.cpp - C interface over libsentencepiece ----------===//
// Built as its own shared object and loaded with dlopen(RTLD_DEEPBIND) by
// TokenData.cpp. Debian's libsentencepiece embeds protobuf-lite 3.14 while
// the ONNX importer links libprotobuf 3.21: linked into one executable, the
// sentencepiece code binds to the newer runtime and aborts in its version
// check. Deep binding makes it use its own copy; the C interface keeps
// protobuf types and allocations on this side of the boundary.
//===----------------------------------------------------------------------===//

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
struct Handle {
  sentencepiece::SentencePieceProcessor sp;
  std::string error;
};

char *copyString(const std::string &s) {
  char *out = static_cast<char *>(std::malloc(s.size() + 1));
  if (out)
    std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}
} // namespace

extern "C" {

/// A processor for the serialized model in `bytes`, or null with `*error`
/// set (malloc'ed; free with qm_spm_free_buffer).
__attribute__((visibility("default"))) void *
qm_spm_load(const char *bytes, size_t size, char **error) {
  auto *h = new Handle;
  auto status = h->sp.LoadFromSerializedProto(std::string_view(bytes, size));
  if (!status.ok()) {
    if (error)
      *error = copyString(status.ToString());
    delete h;
    return nullptr;
  }
  return h;
}

__attribute__((visibility("default"))) void qm_spm_free(void *handle) {
  delete static_cast<Handle *>(handle);
}

__attribute__((visibility("default"))) void qm_spm_free_buffer(void *p) {
  std::free(p);
}

/// Encodes `text` into a malloc'ed array of ids (`*ids`, `*count`); returns
/// 0, or -1 with `*error` set.
__attribute__((visibility("default"))) int
qm_spm_encode(void *handle, const char *text, size_t size, int32_t **ids,
              size_t *count, char **error) {
  auto *h = static_cast<Handle *>(handle);
  std::vector<int> out;
  auto status = h->sp.Encode(std::string_view(text, size), &out);
  if (!status.ok()) {
    if (error)
      *error = copyString(status.ToString());
    return -1;
  }
  *count = out.size();
  *ids = static_cast<int32_t *>(std::malloc(sizeof(int32_t) * (out.size() + 1)));
  if (!*ids)
    return -1;
  for (size_t i = 0; i < out.size(); ++i)
    (*ids)[i] = out[i];
  return 0;
}

/// Decodes ids into malloc'ed UTF-8 text (`*text`); 0, or -1 with `*error`.
__attribute__((visibility("default"))) int
qm_spm_decode(void *handle, const int32_t *ids, size_t count, char **text,
              char **error) {
  auto *h = static_cast<Handle *>(handle);
  std::vector<int> in(ids, ids + count);
  std::string out;
  auto status = h->sp.Decode(in, &out);
  if (!status.ok()) {
    if (error)
      *error = copyString(status.ToString());
    return -1;
  }
  *text = copyString(out);
  return *text ? 0 : -1;
}

/// The piece of `id` as the model stores it (U+2581 for a leading space).
__attribute__((visibility("default"))) char *qm_spm_id_to_piece(void *handle,
                                                                int32_t id) {
  return copyString(static_cast<Handle *>(handle)->sp.IdToPiece(id));
}

__attribute__((visibility("default"))) int32_t qm_spm_info(void *handle,
                                                           int what) {
  auto &sp = static_cast<Handle *>(handle)->sp;
  switch (what) {
  case 0:
    return sp.GetPieceSize();
  case 1:
    return sp.bos_id();
  case 2:
    return sp.eos_id();
  case 3:
    return sp.unk_id();
  default:
    return -1;
  }
}
} // extern "C"
