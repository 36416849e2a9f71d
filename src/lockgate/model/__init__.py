"""Pure definitions: tasks, pipelines, graphs, policies, states. No I/O."""
