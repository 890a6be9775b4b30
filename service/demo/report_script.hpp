#pragma once
// python/report/make_report.py, built into the binary (cmake/EmbedText.cmake): `marginet demo`
// and `marginet report` write it next to day.json and run it with a Python that has matplotlib.

namespace marginet::demo {
extern const char* const kReportScript;
}
