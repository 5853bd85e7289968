"""Operating warming: log lines, Prometheus metrics, notifications, the report page.

Leaf helpers over plain data (a report is a mapping here): the stages decide when a
batch ended (`warming.stages.ended`), the shim and the CLI what to show.
"""
