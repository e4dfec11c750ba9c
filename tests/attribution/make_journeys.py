"""Writes tests/attribution/journeys.csv: a deterministic journey file (path, conversions,
value, nulls) used by reference.py and by the Rust test that compares against its output.
Run once; the CSV is committed."""
import csv
import random

rng = random.Random(20240115)
channels = ["display", "email", "organic_search", "paid_search", "paid_social"]
rows = {}
while len(rows) < 300:
    n = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])
    path = [rng.choice(channels) for _ in range(n)]
    if n > 1 and rng.random() < 0.3:
        path[-1] = path[-2]  # consecutive repeats happen in real data
    key = ">".join(path)
    if key in rows:
        continue
    conv = rng.choice([0, 0, 1, 1, 2, 3, 5])
    nulls = rng.choice([0, 1, 2, 4, 8, 15])
    if conv + nulls == 0:
        nulls = 1
    value = round(conv * rng.uniform(20, 500), 2)
    rows[key] = (conv, value, nulls)
with open("tests/attribution/journeys.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "conversions", "value", "nulls"])
    for k, (c, v, n) in rows.items():
        w.writerow([k, c, v, n])
