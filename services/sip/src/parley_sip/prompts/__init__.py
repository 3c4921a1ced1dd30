"""Voice prompts (WAV) the sip service plays; connected.wav was made with espeak-ng and sox:
`espeak-ng -v en-us -s 150 -w raw.wav "..."`, then `sox raw.wav -r 8000 -c 1 -b 16 connected.wav`."""
