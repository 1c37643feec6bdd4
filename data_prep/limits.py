"""The frame rules and size limits of MIDI reading, apart from the reader so that the command line's help can
show them without loading numpy and mido; and the names of the data variants, for the same reason."""

VARIANTS = ("boulanger", "srnn")  # data/<dataset>.h5 and data/<dataset>-srnn.h5


def output_name(dataset: str, variant: str) -> str:
    """The file srnn prep writes for a dataset in a variant."""
    return f"{dataset}.h5" if variant == "boulanger" else f"{dataset}-{variant}.h5"


RULES = ("sample", "overlap")
OVERLAP_SHARE = 0.5  # of a frame: a later frame a note covers less than this much is not held
# A piece longer than this is refused rather than allocated: one corrupt note can last 268 million beats.
# 100,000 frames is over three hours of eighth notes at 120 bpm, and 8.8 MB of roll.
MAX_FRAMES = 100_000
