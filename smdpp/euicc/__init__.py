"""euicc"""
