# The kernel suite: one job per hardware profile of the config that this machine has
# (a profile that is absent is skipped with a message, never faked). GPU profiles
# declare a GPU so cluster executors place them on one; the cpu profile's kernel set
# is small (seconds), so `make run` stays fast.
from pathlib import Path as _Path

import sparsebench.kernels as _kernels_pkg
from sparsebench.hardware import profile as _profile
from sparsebench.plan import runnable_profiles

# plan_jobs (common.smk) already named any skipped profile.
KERNEL_PROFILES = runnable_profiles(
    config["hardware"], only_available=not workflow.non_local_exec, log=None
)
KERNEL_RESULTS = [f"{RESULTS}/kernels/{p}.json" for p in KERNEL_PROFILES]
KERNEL_SOURCES = sorted(
    str(p) for p in _Path(_kernels_pkg.__file__).parent.glob("*.py")
)


rule kernels:
    # Editing a kernel (or the profile) reruns the suite for that profile.
    input:
        profile=lambda w: str(_profile(w.profile).file),
        sources=KERNEL_SOURCES,
    output:
        f"{RESULTS}/kernels/{{profile}}.json",
    log:
        f"{RESULTS}/logs/kernels/{{profile}}.log",
    resources:
        gpu=lambda w: 1 if _profile(w.profile).device == "cuda" else 0,
        mem_mb=lambda w: 32000 if _profile(w.profile).device == "cuda" else 4000,
        runtime=lambda w: 30 if _profile(w.profile).device == "cuda" else 10,
    shell:
        "sparsebench kernels run --profile {wildcards.profile} --out {output} > {log} 2>&1"
