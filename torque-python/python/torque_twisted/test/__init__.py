"""
torque_twisted's own tests: run them with C{trial --reactor=torque torque_twisted}.
"""
