"""RoadEdge environments (importing this registers the Gymnasium ids)."""
