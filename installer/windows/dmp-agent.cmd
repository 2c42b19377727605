@echo off
rem Agent DMP / DMP agent: "dmp-agent.cmd run", "dmp-agent.cmd doctor", "dmp-agent.cmd --help".
rem The installer puts the embeddable Python in python\ and the agent with its libraries in lib\.
"%~dp0python\python.exe" -m agent.cli %*
exit /b %ERRORLEVEL%
