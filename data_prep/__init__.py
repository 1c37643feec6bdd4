"""Source formats, MIDI <-> piano roll and the HDF5 dataset layout. Knows nothing of torch or Pyro."""
__version__ = "0.1.0"
