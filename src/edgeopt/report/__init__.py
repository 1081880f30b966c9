"""Stage 9: the results table, figures and HTML report gathered from every stage's metrics files.

`collect` normalises whatever metrics JSON/CSV files exist (any subset of stages) into tables,
`figures` draws matplotlib figures from those tables, `html` writes one self-contained page.
"""
