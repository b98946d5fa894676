# pair-check.awk: compare the read counts of a sample's two mates.
#
# Input (standard input): the fastq-stats TSV of one sample, no header,
#   file  reads  bases  gc  mean_quality
# with exactly two rows, R1 and R2 (blank lines are ignored).
# Environment: PC_SAMPLE (sample name), PC_OUT (output file),
#              PC_STATS (stats path, for messages only).
# Output (PC_OUT): one TSV line, no header:
#   sample  reads_r1  reads_r2  paired        (paired: yes | no)
# R1/R2 are told apart by an R1/R2 token in the file name
# (S001_R1.fastq, x.R2.fq.gz, ...); when that does not single them out,
# the first row is R1 and the second R2 (fastq-stats keeps input order).
# Exit: 0 ok, 3 the stats file is not two well-formed rows.

function fail(msg) {
    printf "pair-check: %s: %s\n", stats, msg > "/dev/stderr"
    failed = 1
    exit 3
}

function mate(path,    base) {
    base = path
    sub(/^.*\//, "", base)
    if (base ~ /(^|[._-])R1([._-]|$)/) return 1
    if (base ~ /(^|[._-])R2([._-]|$)/) return 2
    return 0
}

BEGIN {
    FS = "\t"
    stats = ENVIRON["PC_STATS"]
    n = 0
}

/^[ \t\r]*$/ { next }

{
    n++
    if (n > 2) next
    sub(/\r$/, "")
    if (NF < 2 || $1 == "")
        fail("row " n " is not a fastq-stats line (file<TAB>reads<TAB>...)")
    if ($2 !~ /^[0-9]+$/)
        fail("row " n ": reads column is not a number: '" $2 "'")
    file[n] = $1
    reads[n] = $2
}

END {
    if (failed) exit 3
    if (n != 2)
        fail("expected exactly 2 rows (R1 and R2), found " n)
    m1 = mate(file[1]); m2 = mate(file[2])
    if (m1 == 2 && m2 == 1) { r1 = reads[2]; r2 = reads[1] }
    else                    { r1 = reads[1]; r2 = reads[2] }
    out = ENVIRON["PC_OUT"]
    printf "%s\t%s\t%s\t%s\n", ENVIRON["PC_SAMPLE"], r1, r2, \
        (r1 + 0 == r2 + 0 ? "yes" : "no") > out
    if (close(out) != 0) {
        printf "pair-check: cannot write %s\n", out > "/dev/stderr"
        exit 1
    }
}
