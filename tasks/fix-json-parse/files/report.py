import json

rows = json.loads(open("data.json"))
scores = [r["score"] for r in rows]
print(f"{sum(scores) / (len(scores) - 1):.2f}")
