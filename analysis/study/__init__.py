"""The parts of this project's own study (docs/study/): its sections, tables and figures
(the paper's Figure 1, needs depth, the depth task, carry gate or identity shortcut) and the
wall times of docs/study/run_study.sh, as opposed to the general tools in analysis/ (collect,
select, tables, plots, report, optuna_*), which read any runs."""
