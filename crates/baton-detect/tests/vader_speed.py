"""Throughput of Python vaderSentiment alone, for the ratio README.md reports.

Usage: python3 vader_speed.py UTTERANCES.jsonl   (JSON Lines with a "text" field, as
`baton detect` reads). Needs `pip install vaderSentiment==3.3.2`. Prints the best of three
passes over all texts, in texts per second.
"""
import json
import sys
import time

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

analyzer = SentimentIntensityAnalyzer()
with open(sys.argv[1], encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in f if line.strip()]
best = None
for _ in range(3):
    start = time.perf_counter()
    for text in texts:
        analyzer.polarity_scores(text)
    elapsed = time.perf_counter() - start
    best = elapsed if best is None else min(best, elapsed)
print(f"{len(texts)} texts, best of 3: {best:.3f} s, {len(texts) / best:.0f}/s")
