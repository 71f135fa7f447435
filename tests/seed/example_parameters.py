import pysandbox as modal

my_app = modal.App.lookup("my-app", create_if_missing=True)
modal.Volume.objects.create("my-volume", allow_existing=True)

sb = modal.Sandbox.create(
    image=modal.Image.debian_slim().pip_install("pandas"),
    volumes={"/data": modal.Volume.from_name("my-volume")},
    workdir="/repo",
    app=my_app,
)

p = sb.exec("python", "-c", "import os, pandas; print(os.getcwd(), os.path.isdir('/data'), pandas.__name__)")
print(p.stdout.read(), end="")
sb.terminate()
