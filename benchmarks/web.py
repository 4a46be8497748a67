"""Server time per update of the web page: the median over 200 requests of each API call the page makes.

    python benchmarks/web.py [--requests 200]

Runs the app in-process (Starlette's TestClient: the routing, parsing, computing and JSON encoding a
real server does, without the network). Target: under 50 ms each. Needs the web extra and httpx.
"""

from __future__ import annotations

import argparse
import statistics
import time

from starlette.testclient import TestClient

from estimator.web.app import create_app

CALLS = {  # what one update of the page asks for, at its defaults
    "/api/estimate": {"model": "llama3-70b", "tokens": "100k", "rank": "32"},
    "/api/sweep (tokens figure, 3 ranks)": {"model": "llama3-70b", "tokens": "100:1B:log60", "ranks": "8,32,128"},
    "/api/sweep (rank figure)": {"model": "llama3-70b", "tokens": "100k", "ranks": "1:8192:x2"},
    "/api/models": {"tokens": "100k", "rank": "32"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    n = parser.parse_args().requests
    client = TestClient(create_app(), base_url="http://127.0.0.1")  # the server answers its own names only
    for name, params in CALLS.items():
        path = name.split(" ")[0]
        client.get(path, params=params)  # warm: imports, the zoo, the layouts
        times = []
        for i in range(n):
            varied = dict(params, rank=str(8 + i % 64)) if "rank" in params else params  # no two alike in a row
            start = time.perf_counter()
            response = client.get(path, params=varied)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
        print(f"{name:40s} median {statistics.median(times):6.2f} ms   p90 {sorted(times)[int(0.9 * n)]:6.2f} ms")


if __name__ == "__main__":
    main()
