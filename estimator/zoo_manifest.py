"""Re-validate every zoo file and rewrite ``model_specs/_validated.json``: ``python -m estimator.zoo_manifest``.

Run it after editing a file in ``model_specs/``; until then the edited file is simply validated in
full on every load (correct, ~40 ms slower).
"""

from estimator.zoo import write_validated_manifest

if __name__ == "__main__":
    print(f"wrote {write_validated_manifest()}")
