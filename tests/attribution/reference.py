"""Reference attribution numbers from an implementation nobody on this project wrote: the
`channelattribution` package (PyPI, v2.2.5, C++ core). Reads tests/attribution/journeys.csv and
writes tests/attribution/reference.json, which tests/all/attribution.rs compares against.

    python -m venv /tmp/ca && /tmp/ca/bin/pip install channelattribution==2.2.5 matplotlib
    /tmp/ca/bin/python tests/attribution/reference.py

CI does not run this: the JSON it writes is committed.

Markov: the package estimates by simulating walks through the fitted chain, and by default cuts a
walk after as many steps as the longest observed path (`max_step`), counting it as a null: with
loops in the chain (a>b>a) that undercounts conversions. `max_step=1000` makes its estimate target
the chain's absorption probabilities, which Switchyard solves exactly.
"""
import json

import pandas as pd
import ChannelAttribution as ca

data = pd.read_csv("tests/attribution/journeys.csv")
out = {"package": "channelattribution", "version": "2.2.5", "models": {}}

h = ca.heuristic_models(data, "path", "conversions", var_value="value", flg_pro=False)
for model, prefix in [("first_touch", "first_touch"), ("last_touch", "last_touch"), ("linear", "linear_touch")]:
    out["models"][model] = {
        row["channel_name"]: {"conversions": float(row[f"{prefix}_conversions"]), "value": float(row[f"{prefix}_value"])}
        for _, row in h.iterrows()
    }

for order in (1, 2):
    res = ca.markov_model(
        data, "path", "conversions", var_value="value", var_null="nulls", order=order,
        out_more=True, nsim_start=1e6, max_step=1000, seed=7, verbose=False, flg_pro=False,
    )
    res_table, removal = res["result"], res["removal_effects"]
    out["models"][f"markov_order_{order}"] = {
        row["channel_name"]: {"conversions": float(row["total_conversions"]), "value": float(row["total_conversion_value"])}
        for _, row in res_table.iterrows()
    }
    out["models"][f"markov_order_{order}_removal_effects"] = {
        row["channel_name"]: float(row["removal_effects_conversion"]) for _, row in removal.iterrows()
    }

with open("tests/attribution/reference.json", "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write("\n")
