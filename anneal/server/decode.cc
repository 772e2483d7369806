// Request bytes to a message (see decode.h).
//
// The fast path is protobuf's own parser, with the recursion limit set. Only
// when it fails is the wire format walked again against the descriptor, to
// find the first field at fault.
#include "anneal/server/decode.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace anneal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

std::string Join(const std::string& path, const std::string& field) {
  return path.empty() ? field : absl::StrCat(path, ".", field);
}

// The first problem of `data` as a `type`, "<path>: <rule>", or "" if none
// is found (the parser and this walk disagree: then the caller says so).
std::string Diagnose(absl::string_view data, const Descriptor* type,
                     const std::string& path, int depth, int64_t offset) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(data.data()),
                      static_cast<int>(data.size()));
  std::vector<int> seen(type->field_count(), 0);  // repeated: the index
  int64_t field_start = offset;
  auto broken = [&](absl::string_view what) {
    return absl::StrCat(path.empty() ? "request" : path,
                        ": must be a serialized ", type->full_name(),
                        ", got bytes that ", what, " (the field at byte ",
                        field_start, ")");
  };
  while (!in.ExpectAtEnd()) {
    field_start = offset + in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return broken("hold an invalid field tag");
    const FieldDescriptor* field = type->FindFieldByNumber(
        static_cast<int>(WireFormatLite::GetTagFieldNumber(tag)));
    std::string where;
    if (field != nullptr) {
      where = Join(path, field->name());
      if (field->is_repeated()) {
        absl::StrAppend(&where, "[", seen[field->index()]++, "]");
      }
    }
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return broken("end inside a number");
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED64: {
        uint64_t v;
        if (!in.ReadLittleEndian64(&v)) return broken("end inside a number");
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED32: {
        uint32_t v;
        if (!in.ReadLittleEndian32(&v)) return broken("end inside a number");
        break;
      }
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t size;
        if (!in.ReadVarint32(&size)) return broken("end inside a length");
        const int64_t start = offset + in.CurrentPosition();
        std::string bytes;
        if (!in.ReadString(&bytes, static_cast<int>(size))) {
          return broken("end inside a field");
        }
        if (field == nullptr) break;  // unknown fields are kept, not checked
        if (field->type() == FieldDescriptor::TYPE_STRING &&
            !IsValidUtf8(bytes)) {
          return absl::StrCat(where, ": must be valid UTF-8, got ",
                              bytes.size(), " bytes that are not");
        }
        if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
          if (depth + 1 >= kMaxRequestDepth) {
            return absl::StrCat(where, ": must nest at most ", kMaxRequestDepth,
                                " messages deep, got more");
          }
          std::string inner =
              Diagnose(bytes, field->message_type(), where, depth + 1, start);
          if (!inner.empty()) return inner;
        }
        break;
      }
      default:  // groups are not used by any anneal message
        return broken("hold a group or an invalid wire type");
    }
  }
  return "";
}

absl::Status Decode(google::protobuf::io::ZeroCopyInputStream* stream,
                    absl::string_view flat, bool have_flat,
                    const grpc::ByteBuffer* buffer,
                    google::protobuf::Message* message) {
  message->Clear();
  bool parsed;
  {
    CodedInputStream in(stream);
    in.SetRecursionLimit(kMaxRequestDepth);
    parsed = message->MergeFromCodedStream(&in) && in.ConsumedEntireMessage();
  }
  if (parsed) return absl::OkStatus();
  message->Clear();
  std::string bytes;
  if (have_flat) {
    bytes = std::string(flat);
  } else {
    std::vector<grpc::Slice> slices;
    (void)buffer->Dump(&slices);
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  std::string why = Diagnose(bytes, message->GetDescriptor(), "", 0, 0);
  if (why.empty()) {
    why = absl::StrCat("request: must be a serialized ",
                       message->GetDescriptor()->full_name(),
                       ", got bytes that do not parse");
  }
  return absl::InvalidArgumentError(why);
}

}  // namespace

absl::Status DecodeRequest(const grpc::ByteBuffer& bytes,
                           google::protobuf::Message* message) {
  grpc::ProtoBufferReader reader(const_cast<grpc::ByteBuffer*>(&bytes));
  return Decode(&reader, "", false, &bytes, message);
}

absl::Status DecodeRequest(absl::string_view bytes,
                           google::protobuf::Message* message) {
  google::protobuf::io::ArrayInputStream stream(bytes.data(),
                                                static_cast<int>(bytes.size()));
  return Decode(&stream, bytes, true, nullptr, message);
}

bool IsValidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

}  // namespace anneal
