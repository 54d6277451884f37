// The metadata_props of an ONNX model, read from its bytes (onnxruntime-web does not expose them).
//
//     import { metadataProps } from "./onnx-metadata.js";
//     const props = metadataProps(new Uint8Array(await (await fetch("model.onnx")).arrayBuffer()));
//
// An ONNX file is a protobuf ModelProto. Only its top-level fields are walked: field 14,
// metadata_props, is a repeated StringStringEntryProto {key = 1, value = 2}; every other field
// (the graph, which holds the weights, included) is skipped by its length without being parsed.

const METADATA_PROPS = 14;
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

export class OnnxFormatError extends Error {}

// A protobuf reader over bytes[start, end): varints, and the fields of one message.
class Reader {
  constructor(bytes, start = 0, end = bytes.length) {
    this.bytes = bytes;
    this.at = start;
    this.end = end;
  }

  varint() {
    // Numbers, not BigInts: lengths and tags of a model that fits in memory stay below 2^53.
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.at >= this.end) throw new OnnxFormatError("truncated varint");
      const byte = this.bytes[this.at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    throw new OnnxFormatError("varint longer than 10 bytes");
  }

  // Yields [field number, wire type, payload start, payload end] for each field until the end.
  *fields() {
    while (this.at < this.end) {
      const tag = this.varint();
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      let start = this.at;
      if (wire === VARINT) this.varint();
      else if (wire === FIXED64) this.at += 8;
      else if (wire === FIXED32) this.at += 4;
      else if (wire === LENGTH_DELIMITED) {
        const length = this.varint();
        start = this.at;
        this.at += length;
      } else throw new OnnxFormatError(`unsupported wire type ${wire} in field ${field}`);
      if (this.at > this.end) throw new OnnxFormatError(`field ${field} runs past the end of the data`);
      yield [field, wire, start, this.at];
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

// {key: value} of the model's metadata_props; an empty object if it has none.
export function metadataProps(bytes) {
  const props = {};
  for (const [field, wire, start, end] of new Reader(bytes).fields()) {
    if (field !== METADATA_PROPS || wire !== LENGTH_DELIMITED) continue;
    let key = "";
    let value = "";
    for (const [f, w, s, e] of new Reader(bytes, start, end).fields()) {
      if (w !== LENGTH_DELIMITED) continue;
      if (f === 1) key = utf8.decode(bytes.subarray(s, e));
      else if (f === 2) value = utf8.decode(bytes.subarray(s, e));
    }
    props[key] = value;
  }
  return props;
}
