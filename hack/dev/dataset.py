"""Writes the demo dataset: "which of two numbers is larger", as JSONL with ids and gold labels, the
same task the demo teacher answers, on numbers below 100. Usage: dataset.py N SEED > train.jsonl"""

import json
import random
import sys


def main(n: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.randrange(100), rng.randrange(100)
        label = "second" if b > a else "first"
        print(json.dumps({"id": str(i), "input": f"First: {a}\nSecond: {b}", "label": label}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
