"""mount_image + unmount_image of a one-layer image in a running sandbox, under each runner,
against exec("true") + wait in the same sandbox (the other host-to-sandbox round trip that
starts a process), interleaved so that both see the same load. mount_image alone is also
printed against the same baseline.

Most of mount_image is starting sandbox-mount (a static binary, spawned by subprocess) and
the kernel's overlay mount; the pidfd request to init is one datagram.
"""

import sys

from _common import RUNNERS, app, interleaved, report

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100


def main():
    seed = modal.Sandbox.create(app=app())
    seed.exec("sh", "-c", "mkdir /p && echo x > /p/f").wait()
    image = seed.snapshot_directory("/p")
    seed.terminate()
    sandboxes = {runner: modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
                 for runner in RUNNERS}
    try:
        for runner, sb in sandboxes.items():
            def cycle(sb=sb):
                sb.mount_image("/mnt/p", image)
                sb.unmount_image("/mnt/p")

            mounted = []

            def mount_only(sb=sb):
                path = f"/mnt/m{len(mounted)}"
                sb.mount_image(path, image)
                mounted.append(path)

            medians = interleaved({"cycle": cycle, "mount": mount_only, "exec": lambda sb=sb: sb.exec("true").wait()},
                                  RUNS)
            report(f"{runner}: mount_image+unmount_image", medians["cycle"], "exec(true)+wait", medians["exec"])
            report(f"{runner}: mount_image", medians["mount"], "exec(true)+wait", medians["exec"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


if __name__ == "__main__":
    main()
