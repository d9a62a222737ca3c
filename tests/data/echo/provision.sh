#!/bin/sh
# Runs in the image at build time.
echo provisioned > /etc/provisioned
