#!/usr/bin/env python3
"""Convert phone.dat (PyPI `phone`, ls0f/lovedboy) to waihu's geo table.

phone.dat: an 8-byte header (4-byte version, little-endian int32 offset of the
first index entry), a record area ("province|city|zip|area_code\\0" each) and
an index of 9-byte entries (<iiB: 7-digit number segment, record offset,
carrier type). The output is UTF-8 text, one item a line, tab-separated:

    waihu-geo 1                                       (format line)
    V <tab> source description                        (one line)
    R <tab> province <tab> city <tab> zip <tab> area code   (records, numbered from 0)
    M <tab> first segment <tab> count <tab> record <tab> carrier
      (runs of consecutive 7-digit segments with the same record and carrier)

Usage: geo_convert.py phone.dat OUT.tsv "PyPI phone 0.4.5"
"""
import struct
import sys

src, out, label = sys.argv[1], sys.argv[2], sys.argv[3]
buf = open(src, "rb").read()
version, first = struct.unpack_from("<4si", buf, 0)
records = {}  # offset -> index
rec_lines = []
runs = []
n = (len(buf) - first) // 9
for k in range(n):
    seg, off, carrier = struct.unpack_from("<iiB", buf, first + 9 * k)
    if off not in records:
        end = buf.index(b"\x00", off)
        fields = buf[off:end].decode("utf-8").split("|")
        if len(fields) != 4:
            sys.exit(f"geo_convert: record at byte {off} has {len(fields)} fields, want 4")
        fields = [f.strip() for f in fields]
        # One record of 0.4.5 writes its area code with two zeros (00479, 锡林郭勒).
        if fields[3].startswith("00"):
            fields[3] = "0" + fields[3].lstrip("0")
        records[off] = len(rec_lines)
        rec_lines.append("\t".join(fields))
    rec = records[off]
    if runs and runs[-1][0] + runs[-1][1] == seg and runs[-1][2] == rec and runs[-1][3] == carrier:
        runs[-1][1] += 1
    else:
        if runs and seg < runs[-1][0] + runs[-1][1]:
            sys.exit(f"geo_convert: index not sorted at entry {k} ({seg})")
        runs.append([seg, 1, rec, carrier])
with open(out, "w", encoding="utf-8") as f:
    f.write("waihu-geo 1\n")
    f.write(f"V\t{label} (phone.dat {version.decode('ascii', 'replace')}, {n} segments)\n")
    for r in rec_lines:
        f.write(f"R\t{r}\n")
    for s, c, r, t in runs:
        f.write(f"M\t{s}\t{c}\t{r}\t{t}\n")
print(f"geo: {n} segments, {len(rec_lines)} places, {len(runs)} runs -> {out}")
