"""The benchmark runners' chart: clustered bars drawn by gnuplot (PNG and SVG), requests/s above
and the server's CPU time per request below (the figure that stays meaningful when the client
saturates). One cluster per server, one bar per case."""
import shutil
import subprocess

METRICS = [("requests_per_s", "requests per second (higher is better)", "requests/s"),
           ("server_cpu_us_per_req", "server CPU time per request, microseconds (lower is better)",
            "us/request")]


def bar_chart(stem, title, servers, cases, value, log=False):
    """servers: names in order; cases: (key, label) pairs; value(server, key, metric): a number
    or None. Writes STEM.png and STEM.svg; returns a line saying what was made, or why not."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "chart skipped: gnuplot not installed (scripts/setup --bench installs gnuplot-nox)"
    for metric, _, _ in METRICS:
        with open(f"{stem}.{metric}.dat", "w") as f:
            f.write("server " + " ".join(f'"{label}"' for _, label in cases) + "\n")
            for s in servers:
                vals = [value(s, key, metric) for key, _ in cases]
                f.write(f'"{s}" ' + " ".join(str(v or 0) for v in vals) + "\n")
    scale = "set logscale y\nset yrange [*:*]" if log else "set yrange [0:*]"
    made = []
    for term, ext in [("pngcairo size 1400,1000 font ',10'", "png"), ("svg size 1400,1000", "svg")]:
        script = f"""
set terminal {term} noenhanced
set output '{stem}.{ext}'
set multiplot layout 2,1
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set grid ytics
{scale}
set key top right
"""
        for metric, what, unit in METRICS:
            script += (f"set title '{title}: {what}{' (log scale)' if log else ''}'\n"
                       f"set ylabel '{unit}'\n"
                       f"plot for [i=2:{len(cases) + 1}] '{stem}.{metric}.dat' "
                       "using i:xtic(1) title columnhead(i)\n")
        script += "unset multiplot\n"
        r = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
        if r.returncode != 0:
            return f"chart failed: {r.stderr.strip()}"
        made.append(f"{stem}.{ext}")
    return "chart: " + ", ".join(made)
