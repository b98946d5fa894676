#!/usr/bin/python3
"""Generate the synthetic paired-end FASTQ sample data set.

Deterministic: a fixed seed and only the Python standard library, so running
it again rewrites byte-identical files (gzip members are written with
mtime=0 and no file name in the header).

    /usr/bin/python3 sample-data/generate.py

Writes, relative to this script's folder:
  fastq/lane{1,2,3}/SNNN_R{1,2}.fastq   (two pairs as .fastq.gz)
  samplesheet.csv                       sample,fastq_1,fastq_2
  invalid/*.fastq                       small malformed files for failure tests
"""

import gzip
import io
import os
import random
import shutil

SEED = 20240611
N_SAMPLES = 100
GZ_SAMPLES = {"S049", "S100"}          # written as .fastq.gz pairs
HERE = os.path.dirname(os.path.abspath(__file__))
FASTQ_DIR = os.path.join(HERE, "fastq")
INVALID_DIR = os.path.join(HERE, "invalid")


def lane_of(i):
    """S001-S040 -> lane1, S041-S080 -> lane2, S081-S100 -> lane3."""
    if i <= 40:
        return "lane1"
    if i <= 80:
        return "lane2"
    return "lane3"


def read_count(rng, i):
    """20..200 reads, mostly small so the whole set stays around 1 MB."""
    if i == 1:
        return 20                      # smallest allowed
    if i == 100:
        return 200                     # largest allowed
    r = rng.random()
    if r < 0.85:
        return rng.randint(20, 35)
    if r < 0.97:
        return rng.randint(36, 100)
    return rng.randint(101, 200)


def base_seq(rng, length, gc, n_rate):
    out = []
    for _ in range(length):
        if rng.random() < n_rate:
            out.append("N")
        elif rng.random() < gc:
            out.append(rng.choice("GC"))
        else:
            out.append(rng.choice("AT"))
    return "".join(out)


def qualities(rng, seq, start_q, drop):
    """Phred+33 string: quality decays along the read, N gets Q2 ('#')."""
    n = len(seq)
    out = []
    for pos, b in enumerate(seq):
        if b == "N":
            q = 2
        else:
            q = int(round(start_q - drop * pos / max(n - 1, 1) + rng.gauss(0, 3)))
            q = min(41, max(2, q))
        out.append(chr(q + 33))
    return "".join(out)


def sample_records(rng, name, i):
    """Return (r1_text, r2_text) for one sample."""
    n_reads = read_count(rng, i)
    max_len = rng.choices([50, 75, 100, 150], weights=[6, 3, 2, 1])[0]
    trimmed = rng.random() < 0.3       # some samples have variable read lengths
    gc = rng.uniform(0.35, 0.65)
    n_rate = rng.choice([0.0, 0.0, 0.001, 0.01])
    start_q = rng.uniform(34, 40)
    r1, r2 = io.StringIO(), io.StringIO()
    for n in range(1, n_reads + 1):
        for mate, buf, drop in ((1, r1, 8), (2, r2, 14)):   # R2 a bit worse
            length = rng.randint(50, max_len) if trimmed else max_len
            seq = base_seq(rng, length, gc, n_rate)
            qual = qualities(rng, seq, start_q, drop)
            buf.write(f"@{name}:{n}/{mate}\n{seq}\n+\n{qual}\n")
    return r1.getvalue(), r2.getvalue()


def write_file(path, text):
    data = text.encode("ascii")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".gz"):
        with open(path, "wb") as raw:
            # filename="" keeps the name out of the header, mtime=0 keeps
            # the bytes reproducible.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                               compresslevel=9, mtime=0) as gz:
                gz.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def write_invalid():
    """Small malformed inputs; each breaks exactly one rule."""
    good = "@X:1/1\nACGTACGTAC\n+\nIIIIIIIIII\n"
    cases = {
        # record not starting with '@' (line 5)
        "bad_header.fastq": good + "X:2/1\nACGT\n+\nIIII\n",
        # third line of a record is not '+' (line 3)
        "missing_plus.fastq": "@X:1/1\nACGT\nIIII\nIIII\n",
        # sequence 10 bases, quality 9 (line 4)
        "length_mismatch.fastq": "@X:1/1\nACGTACGTAC\n+\nIIIIIIIII\n",
        # record 2 (from line 5) ends after its "+" line (line 7)
        "truncated.fastq": good + "@X:2/1\nACGT\n+\n",
        # 'U' is not in ACGTN (line 6)
        "bad_base.fastq": good + "@X:2/1\nACGU\n+\nIIII\n",
    }
    if os.path.isdir(INVALID_DIR):
        shutil.rmtree(INVALID_DIR)
    for name, text in cases.items():
        write_file(os.path.join(INVALID_DIR, name), text)


def main():
    rng = random.Random(SEED)
    if os.path.isdir(FASTQ_DIR):
        shutil.rmtree(FASTQ_DIR)
    rows = []
    for i in range(1, N_SAMPLES + 1):
        name = f"S{i:03d}"
        ext = ".fastq.gz" if name in GZ_SAMPLES else ".fastq"
        r1_key = f"{lane_of(i)}/{name}_R1{ext}"
        r2_key = f"{lane_of(i)}/{name}_R2{ext}"
        r1, r2 = sample_records(rng, name, i)
        write_file(os.path.join(FASTQ_DIR, r1_key), r1)
        write_file(os.path.join(FASTQ_DIR, r2_key), r2)
        rows.append(f"{name},{r1_key},{r2_key}\n")
    with open(os.path.join(HERE, "samplesheet.csv"), "w", newline="\n") as f:
        f.write("sample,fastq_1,fastq_2\n")
        f.writelines(rows)
    write_invalid()


if __name__ == "__main__":
    main()
