import pysandbox as modal

my_app = modal.App.lookup("my-app", create_if_missing=True)

image = modal.Image.debian_slim().pip_install("pandas", "numpy")

with modal.enable_output():
    sb = modal.Sandbox.create(image=image, app=my_app)

p = sb.exec("python", "-c", "import numpy, pandas; print(pandas.DataFrame({'a': numpy.arange(3)}).a.sum())")
print(p.stdout.read(), end="")
sb.terminate()
