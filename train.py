#!/usr/bin/env python
"""Train an agent on RoadEdge and compare it with every baseline.

    python train.py --algo maskable_ppo --env RoadEdge-v1 --seed 0

See ``python train.py --help`` and ``roadedge.agents.train``.
"""

from roadedge.agents.train import main

if __name__ == "__main__":
    raise SystemExit(main())
