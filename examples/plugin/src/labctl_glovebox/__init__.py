"""labctl-glovebox: the glovebox atmosphere as a labctl plug-in (an example of the plugin contract).

Two instruments of the `glovebox` role family, each a driver with its byte-level simulator core:
- `glovebox.o2`: Teledyne Analytical Instruments 3000TA trace oxygen analyzer (RS-232 status stream),
  driver `teledyne3000ta`;
- `glovebox.h2o`: Vaisala DRYCAP DMT143 dew-point transmitter (RS-232 serial commands), driver
  `vaisala_dmt143`;
and the step kind `glovebox_check: {max_o2: 1 ppm, max_h2o: 1 ppm}` that refuses to go on in a glovebox
whose atmosphere would attack lithium. Every module an entry point names declares `LABCTL_PLUGIN_API`.
"""

LABCTL_PLUGIN_API = 1
__version__ = "0.1.0"
