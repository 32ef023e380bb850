"""Planning a campaign's compute: its jobs and their resources, the cost model, the budget."""
