#!/usr/bin/env python3
"""Oracle for the VADER differential test: scores every text of the VADER ground-truth files
with Python vaderSentiment 3.3.2 and prints one JSON line per text:
{"file", "id", "text", "neg", "neu", "pos", "compound"}.

Usage: vader_oracle.py DATASET_DIR  (the `vader_ground_truth` folder of ../shared/datasets)
"""
import json
import sys
from pathlib import Path

from importlib.metadata import version

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

if version("vaderSentiment") != "3.3.2":
    sys.exit(f"vaderSentiment {version('vaderSentiment')} installed; the oracle is 3.3.2")

folder = Path(sys.argv[1])
analyzer = SentimentIntensityAnalyzer()
out = sys.stdout
for path in sorted(folder.glob("*_GroundTruth.txt")):
    # The files are UTF-8 with CRLF line ends; one starts with a BOM (SOURCE.md).
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        scores = analyzer.polarity_scores(parts[2])
        out.write(json.dumps({"file": path.name, "id": parts[0], "text": parts[2], **scores}) + "\n")
