"""Convert resemblyzer's pretrained.pt (legacy, non-zip PyTorch format) to
safetensors without torch: the file is a run of pickles (magic number,
protocol version, system info, the checkpoint with storages as persistent
ids, the list of storage keys) followed by each storage's raw bytes behind an
8-byte element count. Only the encoder's tensors (lstm.*, linear.*) are kept.

usage: python3 resemblyzer_convert.py pretrained.pt out.safetensors
"""
import json
import pickle
import struct
import sys

MAGIC = 0x1950A86A20F9469CFC6C
KEEP = ("lstm.", "linear.")
ELEM = {"FloatStorage": ("F32", 4)}


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: Tensor(storage, offset, size, stride)
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        # Anything else (optimizer classes, code) is refused rather than run.
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return {"type": pid[1], "key": pid[2], "numel": pid[4]}


def fail(msg):
    sys.exit(f"resemblyzer_convert: {msg}")


def main(src, dst):
    with open(src, "rb") as f:
        if pickle.load(f) != MAGIC:
            fail(f"{src}: not a legacy PyTorch file (bad magic number)")
        if pickle.load(f) != 1001:
            fail(f"{src}: unsupported protocol version")
        info = pickle.load(f)
        if not info.get("little_endian", False):
            fail(f"{src}: big-endian checkpoints are not supported")
        ckpt = Unpickler(f).load()
        keys = pickle.load(f)
        blobs = {}
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            blobs[key] = (numel, f.read(numel * 4))
    state = ckpt.get("model_state") if isinstance(ckpt, dict) else None
    if state is None:
        fail(f"{src}: no model_state in the checkpoint")
    header, chunks, pos = {}, [], 0
    for name, t in state.items():
        if not name.startswith(KEEP):
            continue
        if not isinstance(t, Tensor) or t.storage["type"] not in ELEM:
            fail(f"{src}: {name} is not a float32 tensor")
        dtype, width = ELEM[t.storage["type"]]
        numel, raw = blobs[t.storage["key"]]
        n = 1
        for d in t.size:
            n *= d
        contiguous = []
        acc = 1
        for d in reversed(t.size):
            contiguous.insert(0, acc)
            acc *= d
        if list(t.stride) != contiguous:
            fail(f"{src}: {name} is not contiguous")
        if t.offset + n > numel or len(raw) != numel * width:
            fail(f"{src}: {name} runs past its storage (truncated file?)")
        data = raw[t.offset * width:(t.offset + n) * width]
        header[name] = {"dtype": dtype, "shape": list(t.size), "data_offsets": [pos, pos + len(data)]}
        chunks.append(data)
        pos += len(data)
    if not header:
        fail(f"{src}: no encoder tensors found")
    header["__metadata__"] = {"source": "resemblyzer 0.1.4 pretrained.pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst, "wb") as out:
        out.write(struct.pack("<Q", len(h)))
        out.write(h)
        for c in chunks:
            out.write(c)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: resemblyzer_convert.py pretrained.pt out.safetensors")
    main(sys.argv[1], sys.argv[2])
