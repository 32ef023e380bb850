# GPAW build without MPI (Debian's mpicc, pulled in by Quantum ESPRESSO, would
# otherwise switch the build to MPI), with FFTW and OpenBLAS from Debian.
mpi = False
compiler = "g++"
fftw = True
libraries += ["blas", "fftw3"]  # noqa: F821 - GPAW's build defines ``libraries``
